// The forwarding database: (VNI, MAC) -> peer index, an open-addressing hash table in linear memory.
//
// Linear probing over a power-of-two array of 16-byte slots (four per cache line), sized at setup
// so that at most 8 of 9 slots are ever used: a lookup is one multiply and, at the usual load,
// one cache line. Deletion shifts the following cluster back (Knuth's algorithm R) instead of
// leaving tombstones, so churn (learning, ageing, flushes) never degrades probing and never needs a
// rehash. Static entries come from the control plane; learned entries come from decap and age out.
// Learning never changes a static entry; a control-plane add over a static entry with another
// peer fails with ST_FDB_STATIC_EXISTS unless the caller asks for FDB_ADD_REPLACE.
//
// Slot: MAC (6 bytes, wire order) | VNI bits 0-15 (u16) | VNI bits 16-23 (u8) | flags (u8) |
// peer (u16) | last-seen time in seconds (u32). The first 8 bytes and the u16 after them are the key,
// compared as one u64 and one masked u16. Single writer: only the datapath's thread calls the
// mutating functions, between packet batches.
import {
  CTX_AGEING,
  CTX_FDB,
  CTX_FDB_CAPACITY,
  CTX_FDB_COUNT,
  CTX_FDB_CURSOR,
  CTX_FDB_MASK,
  CTX_FDB_SHIFT,
  CTX_MAX_PEERS,
  CTX_PEERS,
  FDB_ADD_REPLACE,
  FDB_F_STATIC,
  FDB_F_USED,
  FDBREC_MAC,
  FDBREC_PEER,
  FDBREC_SIZE,
  FDBREC_STATUS,
  FDBREC_VNI,
  NO_INDEX,
  PEER_ADDRLEN,
  PEER_SIZE,
  ST_FDB_FULL,
  ST_FDB_STATIC_EXISTS,
  ST_INVALID_MAC,
  ST_INVALID_PEER,
  ST_INVALID_VNI,
  ST_NOT_FOUND,
  ST_OK,
  VNI_MAX,
} from './constants';

const USED_TAG: u32 = FDB_F_USED << 8;

/** The 48-bit MAC at `p` as a u64 (byte 0 in bits 0-7). */
@inline
export function mac_load(p: usize): u64 {
  return <u64>load<u32>(p) | (<u64>load<u16>(p, 4) << 32);
}

/** First 8 key bytes of a slot: the MAC and the VNI's low 16 bits. */
@inline
export function fdb_k0(vni: u32, mac: u64): u64 {
  return mac | (<u64>(vni & 0xffff) << 48);
}

@inline
function home(k0: u64, vhi: u32, shift: u32): u32 {
  return <u32>(((k0 ^ (<u64>vhi * 0xff51afd7ed558ccd)) * 0x9e3779b97f4a7c15) >> (<u64>shift));
}

@inline
function slot_home(ctx: usize, e: usize): u32 {
  return home(load<u64>(e), <u32>load<u8>(e, 8), load<u32>(ctx, CTX_FDB_SHIFT));
}

/** The slot holding (vni, mac), or 0. */
@inline
export function fdb_find(ctx: usize, vni: u32, mac: u64): usize {
  const base = load<usize>(ctx, CTX_FDB);
  const mask = load<u32>(ctx, CTX_FDB_MASK);
  const k0 = fdb_k0(vni, mac);
  const tag = (vni >>> 16) | USED_TAG;
  let i = home(k0, vni >>> 16, load<u32>(ctx, CTX_FDB_SHIFT));
  while (true) {
    const e = base + (<usize>i << 4);
    const m = <u32>load<u16>(e, 8);
    if ((m & USED_TAG) == 0) return 0;
    if (load<u64>(e) == k0 && (m & 0x1ff) == tag) return e;
    i = (i + 1) & mask;
  }
}

/**
 * Loads the home slot of (vni, mac) and returns a word of it. A batch first touches the home slot
 * of every key, then looks each up: the first pass's loads are independent of one another, so
 * the CPU overlaps their cache misses instead of taking them one by one (WASM has no prefetch).
 * The caller stores the result into a field it overwrites later, which keeps the load alive.
 */
@inline
export function fdb_touch(ctx: usize, vni: u32, mac: u64): u32 {
  const i = home(fdb_k0(vni, mac), vni >>> 16, load<u32>(ctx, CTX_FDB_SHIFT));
  return load<u32>(load<usize>(ctx, CTX_FDB) + (<usize>i << 4), 8);
}

/** The peer for (vni, mac), or NO_INDEX. */
@inline
export function fdb_lookup(ctx: usize, vni: u32, mac: u64): u32 {
  const e = fdb_find(ctx, vni, mac);
  return e ? <u32>load<u16>(e, 10) : <u32>NO_INDEX;
}

/** Removes the entry in slot `i`, shifting later entries of its cluster back into the hole. */
export function fdb_delete_slot(ctx: usize, i: u32): void {
  const base = load<usize>(ctx, CTX_FDB);
  const mask = load<u32>(ctx, CTX_FDB_MASK);
  let j = i;
  while (true) {
    j = (j + 1) & mask;
    const ej = base + (<usize>j << 4);
    if ((<u32>load<u8>(ej, 9) & FDB_F_USED) == 0) break;
    const k = slot_home(ctx, ej);
    // The entry at j may fill the hole at i unless its home lies cyclically in (i, j].
    const stays = i <= j ? i < k && k <= j : i < k || k <= j;
    if (stays) continue;
    const ei = base + (<usize>i << 4);
    store<u64>(ei, load<u64>(ej));
    store<u64>(ei, load<u64>(ej, 8), 8);
    i = j;
  }
  const e = base + (<usize>i << 4);
  store<u64>(e, 0);
  store<u64>(e, 0, 8);
  store<u32>(ctx, load<u32>(ctx, CTX_FDB_COUNT) - 1, CTX_FDB_COUNT);
}

@inline
function slot_index(ctx: usize, e: usize): u32 {
  return <u32>((e - load<usize>(ctx, CTX_FDB)) >>> 4);
}

/** Inserts a new entry (the key must be absent). ST_FDB_FULL at the configured capacity. */
function insert(ctx: usize, vni: u32, mac: u64, peer: u32, flags: u32, now: u32): i32 {
  const count = load<u32>(ctx, CTX_FDB_COUNT);
  if (count >= load<u32>(ctx, CTX_FDB_CAPACITY)) return ST_FDB_FULL;
  const base = load<usize>(ctx, CTX_FDB);
  const mask = load<u32>(ctx, CTX_FDB_MASK);
  const k0 = fdb_k0(vni, mac);
  let i = home(k0, vni >>> 16, load<u32>(ctx, CTX_FDB_SHIFT));
  let e = base + (<usize>i << 4);
  while (<u32>load<u8>(e, 9) & FDB_F_USED) {
    i = (i + 1) & mask;
    e = base + (<usize>i << 4);
  }
  store<u64>(e, k0);
  store<u8>(e, <u8>(vni >>> 16), 8);
  store<u8>(e, <u8>(flags | FDB_F_USED), 9);
  store<u16>(e, <u16>peer, 10);
  store<u32>(e, now, 12);
  store<u32>(ctx, count + 1, CTX_FDB_COUNT);
  return ST_OK;
}

@inline
export function mac_valid(mac: u64): bool {
  return mac != 0 && (mac & 1) == 0;
}

@inline
export function peer_in_use(ctx: usize, peer: u32): bool {
  if (peer >= load<u32>(ctx, CTX_MAX_PEERS)) return false;
  return load<u32>(load<usize>(ctx, CTX_PEERS) + <usize>peer * PEER_SIZE, PEER_ADDRLEN) != 0;
}

/** Control-plane add of a static entry. A learned entry under the key is made static. */
export function fdb_add(ctx: usize, vni: u32, mac: u64, peer: u32, now: u32, flags: u32): i32 {
  if (vni > <u32>VNI_MAX) return ST_INVALID_VNI;
  if (!mac_valid(mac)) return ST_INVALID_MAC;
  if (!peer_in_use(ctx, peer)) return ST_INVALID_PEER;
  const e = fdb_find(ctx, vni, mac);
  if (!e) return insert(ctx, vni, mac, peer, FDB_F_STATIC, now);
  const f = <u32>load<u8>(e, 9);
  if (f & FDB_F_STATIC && <u32>load<u16>(e, 10) != peer && !(flags & FDB_ADD_REPLACE)) return ST_FDB_STATIC_EXISTS;
  store<u8>(e, <u8>(FDB_F_USED | FDB_F_STATIC), 9);
  store<u16>(e, <u16>peer, 10);
  store<u32>(e, now, 12);
  return ST_OK;
}

/** Control-plane delete of one entry (static or learned). */
export function fdb_remove(ctx: usize, vni: u32, mac: u64): i32 {
  if (vni > <u32>VNI_MAX) return ST_INVALID_VNI;
  const e = fdb_find(ctx, vni, mac);
  if (!e) return ST_NOT_FOUND;
  fdb_delete_slot(ctx, slot_index(ctx, e));
  return ST_OK;
}

/**
 * Learning from a received frame: 1 if an entry was created or moved to `peer`, 0 if nothing
 * changed (refreshed, or static), -1 if refused (a static entry with another peer, or FDB full).
 */
export function fdb_learn(ctx: usize, vni: u32, mac: u64, peer: u32, now: u32): i32 {
  const e = fdb_find(ctx, vni, mac);
  if (!e) return insert(ctx, vni, mac, peer, 0, now) == ST_OK ? 1 : -1;
  const old = <u32>load<u16>(e, 10);
  if (<u32>load<u8>(e, 9) & FDB_F_STATIC) return old == peer ? 0 : -1;
  // Stores only when something changed: the slot's cache line stays clean on the common path.
  if (load<u32>(e, 12) != now) store<u32>(e, now, 12);
  if (old == peer) return 0;
  store<u16>(e, <u16>peer, 10);
  return 1;
}

// ---- Sweeps. A deletion refills the current slot from later in its cluster, so a sweep looks
// at the same slot again instead of moving on; entries only ever move backwards, so none is
// skipped. -------------------------------------------------------------------------------------

const SWEEP_AGE: u32 = 0;
const SWEEP_PEER: u32 = 1;
const SWEEP_VNI: u32 = 2;

@inline
function sweep_match(e: usize, kind: u32, arg: u32, now: u32, ageing: u32): bool {
  const f = <u32>load<u8>(e, 9);
  if ((f & FDB_F_USED) == 0) return false;
  if (kind == SWEEP_AGE) return (f & FDB_F_STATIC) == 0 && now - load<u32>(e, 12) >= ageing;
  if (kind == SWEEP_PEER) return <u32>load<u16>(e, 10) == arg;
  return ((<u32>load<u16>(e, 6)) | (<u32>load<u8>(e, 8) << 16)) == arg;
}

/**
 * Looks at `budget` slots from `start` (a delete does not use up budget: the same slot is looked
 * at again, and there are at most as many deletes as entries). Returns the entries removed in the
 * low 32 bits and the slot where the sweep stopped in the high 32.
 */
function sweep(ctx: usize, kind: u32, arg: u32, now: u32, start: u32, budget: u32): u64 {
  const base = load<usize>(ctx, CTX_FDB);
  const mask = load<u32>(ctx, CTX_FDB_MASK);
  const ageing = load<u32>(ctx, CTX_AGEING);
  let i = start & mask;
  let removed: u32 = 0;
  for (let n: u32 = 0; n < budget; ) {
    if (sweep_match(base + (<usize>i << 4), kind, arg, now, ageing)) {
      fdb_delete_slot(ctx, i);
      removed++;
    } else {
      i = (i + 1) & mask;
      n++;
    }
  }
  return <u64>removed | (<u64>i << 32);
}

@inline
function sweep_all(ctx: usize, kind: u32, arg: u32, now: u32): u32 {
  return <u32>sweep(ctx, kind, arg, now, 0, load<u32>(ctx, CTX_FDB_MASK) + 1);
}

/**
 * Removes learned entries idle for CTX_AGEING seconds or more (0 = never). Looks at `budget`
 * slots from where the previous call stopped, so the host can spread a sweep over batches.
 * Returns the number of entries removed.
 */
export function fdb_age(ctx: usize, now: u32, budget: u32): u32 {
  if (load<u32>(ctx, CTX_AGEING) == 0) return 0;
  const r = sweep(ctx, SWEEP_AGE, 0, now, load<u32>(ctx, CTX_FDB_CURSOR), budget);
  store<u32>(ctx, <u32>(r >>> 32), CTX_FDB_CURSOR);
  return <u32>r;
}

/** Removes every entry (static and learned) that points at `peer`. */
export function fdb_delete_peer(ctx: usize, peer: u32): u32 {
  return sweep_all(ctx, SWEEP_PEER, peer, 0);
}

/** Removes every entry (static and learned) of `vni`. */
export function fdb_flush_vni(ctx: usize, vni: u32): u32 {
  return sweep_all(ctx, SWEEP_VNI, vni, 0);
}

// ---- Batch exports: FDBREC_SIZE-byte records, a status per record. ----------------------------

/** Adds static entries; returns how many records failed (each has its ST_* in FDBREC_STATUS). */
export function fdb_add_batch(ctx: usize, recs: usize, n: u32, now: u32, flags: u32): u32 {
  let failed: u32 = 0;
  for (let r = recs, end = recs + <usize>n * FDBREC_SIZE; r < end; r += FDBREC_SIZE) {
    const st = fdb_add(ctx, load<u32>(r, FDBREC_VNI), mac_load(r + FDBREC_MAC), <u32>load<u16>(r, FDBREC_PEER), now, flags);
    store<u32>(r, st, FDBREC_STATUS);
    if (st != ST_OK) failed++;
  }
  return failed;
}

/** Removes entries; returns how many were not found or invalid. */
export function fdb_remove_batch(ctx: usize, recs: usize, n: u32): u32 {
  let failed: u32 = 0;
  for (let r = recs, end = recs + <usize>n * FDBREC_SIZE; r < end; r += FDBREC_SIZE) {
    const st = fdb_remove(ctx, load<u32>(r, FDBREC_VNI), mac_load(r + FDBREC_MAC));
    store<u32>(r, st, FDBREC_STATUS);
    if (st != ST_OK) failed++;
  }
  return failed;
}

/** Looks records up: FDBREC_STATUS gets the peer index or NO_INDEX. Returns the number of hits. */
export function fdb_lookup_batch(ctx: usize, recs: usize, n: u32): u32 {
  let hits: u32 = 0;
  const end = recs + <usize>n * FDBREC_SIZE;
  for (let r = recs; r < end; r += FDBREC_SIZE) {
    store<u32>(r, fdb_touch(ctx, load<u32>(r, FDBREC_VNI), mac_load(r + FDBREC_MAC)), FDBREC_STATUS);
  }
  for (let r = recs; r < end; r += FDBREC_SIZE) {
    const peer = fdb_lookup(ctx, load<u32>(r, FDBREC_VNI), mac_load(r + FDBREC_MAC));
    store<u32>(r, peer, FDBREC_STATUS);
    if (peer != <u32>NO_INDEX) hits++;
  }
  return hits;
}

/** Learns records (as decap would); returns the number refused. For tests and benches. */
export function fdb_learn_batch(ctx: usize, recs: usize, n: u32, now: u32): u32 {
  let refused: u32 = 0;
  for (let r = recs, end = recs + <usize>n * FDBREC_SIZE; r < end; r += FDBREC_SIZE) {
    const mac = mac_load(r + FDBREC_MAC);
    const vni = load<u32>(r, FDBREC_VNI);
    const peer = <u32>load<u16>(r, FDBREC_PEER);
    const st = mac_valid(mac) && vni <= <u32>VNI_MAX && peer_in_use(ctx, peer) ? fdb_learn(ctx, vni, mac, peer, now) : -1;
    store<u32>(r, <u32>st, FDBREC_STATUS);
    if (st < 0) refused++;
  }
  return refused;
}
