// The neighbour table: (VNI, IPv4) -> MAC, the ARP proxy's answers.
//
// Same shape as the FDB: linear probing over 16-byte slots with backward-shift deletion. A slot is
// vni|NEIGH_USED (u32) | IPv4 address in wire order (u32) | MAC (6) | pad; its first 8 bytes are
// the key, compared as one u64. Entries come only from the control plane (remote endpoints'
// addresses), so there is no ageing. Single writer: the datapath's thread.
import {
  CTX_NEIGH,
  CTX_NEIGH_CAPACITY,
  CTX_NEIGH_COUNT,
  CTX_NEIGH_MASK,
  CTX_NEIGH_SHIFT,
  NEIGH_ENTRY_SIZE,
  NEIGH_IP,
  NEIGH_MAC,
  NEIGH_STATUS,
  NEIGH_USED,
  NEIGH_VNI,
  ST_INVALID_IP,
  ST_INVALID_MAC,
  ST_INVALID_VNI,
  ST_NEIGH_FULL,
  ST_NOT_FOUND,
  ST_OK,
  VNI_MAX,
} from './constants';
import { mac_load, mac_valid } from './fdb';

@inline
function key(vni: u32, ip: u32): u64 {
  return <u64>(vni | NEIGH_USED) | (<u64>ip << 32);
}

@inline
function home(ctx: usize, k: u64): u32 {
  return <u32>((k * 0x9e3779b97f4a7c15) >> (<u64>load<u32>(ctx, CTX_NEIGH_SHIFT)));
}

/** The slot of (vni, ip) (ip as loaded from wire order), or 0. */
@inline
export function neigh_find(ctx: usize, vni: u32, ip: u32): usize {
  const base = load<usize>(ctx, CTX_NEIGH);
  const mask = load<u32>(ctx, CTX_NEIGH_MASK);
  const k = key(vni, ip);
  let i = home(ctx, k);
  while (true) {
    const e = base + (<usize>i << 4);
    const v = load<u64>(e);
    if (v == k) return e;
    if (v == 0) return 0;
    i = (i + 1) & mask;
  }
}

/** Adds or replaces the MAC of (vni, ip). */
export function neigh_add(ctx: usize, vni: u32, ip: u32, mac: u64): i32 {
  if (vni > <u32>VNI_MAX) return ST_INVALID_VNI;
  if (!mac_valid(mac)) return ST_INVALID_MAC;
  // 0.0.0.0, 127/8, multicast and broadcast are never answered by the proxy.
  const b0 = ip & 0xff;
  if (ip == 0 || b0 == 127 || b0 >= 224) return ST_INVALID_IP;
  let e = neigh_find(ctx, vni, ip);
  if (!e) {
    const count = load<u32>(ctx, CTX_NEIGH_COUNT);
    if (count >= load<u32>(ctx, CTX_NEIGH_CAPACITY)) return ST_NEIGH_FULL;
    const base = load<usize>(ctx, CTX_NEIGH);
    const mask = load<u32>(ctx, CTX_NEIGH_MASK);
    let i = home(ctx, key(vni, ip));
    e = base + (<usize>i << 4);
    while (load<u64>(e) != 0) {
      i = (i + 1) & mask;
      e = base + (<usize>i << 4);
    }
    store<u64>(e, key(vni, ip));
    store<u32>(ctx, count + 1, CTX_NEIGH_COUNT);
  }
  store<u32>(e, <u32>mac, NEIGH_MAC);
  store<u16>(e, <u16>(mac >> 32), NEIGH_MAC + 4);
  return ST_OK;
}

function delete_slot(ctx: usize, i: u32): void {
  const base = load<usize>(ctx, CTX_NEIGH);
  const mask = load<u32>(ctx, CTX_NEIGH_MASK);
  let j = i;
  while (true) {
    j = (j + 1) & mask;
    const ej = base + (<usize>j << 4);
    const v = load<u64>(ej);
    if (v == 0) break;
    const k = home(ctx, v);
    const stays = i <= j ? i < k && k <= j : i < k || k <= j;
    if (stays) continue;
    const ei = base + (<usize>i << 4);
    store<u64>(ei, v);
    store<u64>(ei, load<u64>(ej, 8), 8);
    i = j;
  }
  const e = base + (<usize>i << 4);
  store<u64>(e, 0);
  store<u64>(e, 0, 8);
  store<u32>(ctx, load<u32>(ctx, CTX_NEIGH_COUNT) - 1, CTX_NEIGH_COUNT);
}

export function neigh_remove(ctx: usize, vni: u32, ip: u32): i32 {
  const e = neigh_find(ctx, vni, ip);
  if (!e) return ST_NOT_FOUND;
  delete_slot(ctx, <u32>((e - load<usize>(ctx, CTX_NEIGH)) >>> 4));
  return ST_OK;
}

/** Removes every entry of `vni` (see the FDB's sweeps for why `i` stays put after a delete). */
export function neigh_flush_vni(ctx: usize, vni: u32): u32 {
  const base = load<usize>(ctx, CTX_NEIGH);
  const mask = load<u32>(ctx, CTX_NEIGH_MASK);
  const w = vni | NEIGH_USED;
  let removed: u32 = 0;
  let i: u32 = 0;
  for (let n: u32 = 0; n <= mask; ) {
    if (load<u32>(base + (<usize>i << 4)) == w) {
      delete_slot(ctx, i);
      removed++;
    } else {
      i = (i + 1) & mask;
      n++;
    }
  }
  return removed;
}

// Batches of NEIGH_ENTRY_SIZE-byte records: vni | ip | MAC | status (u16, out).

/** Adds or replaces entries; returns how many failed. */
export function neigh_add_batch(ctx: usize, recs: usize, n: u32): u32 {
  let failed: u32 = 0;
  for (let r = recs, end = recs + <usize>n * NEIGH_ENTRY_SIZE; r < end; r += NEIGH_ENTRY_SIZE) {
    const st = neigh_add(ctx, load<u32>(r, NEIGH_VNI), load<u32>(r, NEIGH_IP), mac_load(r + NEIGH_MAC));
    store<u16>(r, <u16>st, NEIGH_STATUS);
    if (st != ST_OK) failed++;
  }
  return failed;
}

/** Removes entries; returns how many were not found. */
export function neigh_remove_batch(ctx: usize, recs: usize, n: u32): u32 {
  let failed: u32 = 0;
  for (let r = recs, end = recs + <usize>n * NEIGH_ENTRY_SIZE; r < end; r += NEIGH_ENTRY_SIZE) {
    const st = neigh_remove(ctx, load<u32>(r, NEIGH_VNI), load<u32>(r, NEIGH_IP));
    store<u16>(r, <u16>st, NEIGH_STATUS);
    if (st != ST_OK) failed++;
  }
  return failed;
}
