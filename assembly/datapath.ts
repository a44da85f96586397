// The batch pipeline: encapsulate frames from local ports, decapsulate datagrams from peers.
//
// Every export takes the context pointer `ctx` (CTX_* layout in constants.ts) and, for packets, a
// batch of DESC_SIZE-byte descriptors; all state hangs off ctx, so a worker's instance of this
// module runs the same code on the same shared memory. There are no module globals.
//
// Concurrency: the tables are single-writer. The thread that runs dp_encap/dp_decap for a context
// (decap writes: learning, learned peers, counters, events) is the only one that may call the
// control functions (fdb_*_batch, neigh_*_batch, dp_peer_*, dp_port_*, dp_age), and it applies
// them between packet batches. Other threads may read counters and tables.
//
// encap, per descriptor (in: DESC_PTR/LEN = Ethernet frame, DESC_ARG = source port index):
//   ARP with the proxy on     -> arp_reduce: VERDICT_REPLY (reply in place, DESC_ARG = port) or drop
//   group destination MAC     -> VERDICT_FLOOD, DESC_ADDR = the port's flood list
//   unicast, FDB hit          -> VERDICT_SEND, DESC_ARG = peer, DESC_ADDR = peer's sockaddr
//   unicast, FDB miss         -> L2-miss event; VERDICT_FLOOD if DP_F_FLOOD_UNKNOWN, else drop
//   SEND and FLOOD push the VXLAN header in place (DESC_PTR -= 8) and set DESC_VNI. With
//   DP_F_RAW_UNDERLAY, SEND pushes outer IPv4 + UDP as well, and FLOOD leaves the inner frame
//   unencapsulated (each copy needs its own outer header: the host replicates, then outer_v4_batch).
// decap, per descriptor (in: DESC_PTR/LEN = UDP payload, DESC_ADDR = source sockaddr):
//   VXLAN header check -> VNI to port (unknown: drop) -> inner frame length -> source peer (unknown:
//   drop, or with learning a new learned peer and an EVT_PEER_LEARNED event) -> learning of the
//   inner source MAC -> VERDICT_LOCAL with DESC_ARG = port, DESC_VNI = VNI and DESC_PTR/LEN moved
//   to the inner frame. Drops are counted per reason (global, and per port/peer once known).
import { arp_reduce } from './arp';
import {
  CNT_BLOCK_SIZE,
  CNT_FLOOD_PACKETS,
  CNT_LEARN_REFUSED,
  CNT_LEARNED,
  CNT_REPLIES,
  CNT_RX_BYTES,
  CNT_RX_PACKETS,
  CNT_TX_BYTES,
  CNT_TX_PACKETS,
  CTX_CNT_GLOBAL,
  CTX_CNT_PEERS,
  CTX_CNT_PORTS,
  CTX_EVENT_SLOTS,
  CTX_EVENTS,
  CTX_FDB,
  CTX_FDB_BYTES,
  CTX_FDB_CAPACITY,
  CTX_FDB_MASK,
  CTX_FDB_SHIFT,
  CTX_FLAGS,
  CTX_FLOOD,
  CTX_MAX_FLOOD,
  CTX_MAX_PEERS,
  CTX_MAX_PORTS,
  CTX_MEM_BYTES,
  CTX_NEIGH,
  CTX_NEIGH_CAPACITY,
  CTX_NEIGH_MASK,
  CTX_NEIGH_SHIFT,
  CTX_OUTER,
  CTX_PEER_HASH,
  CTX_PEER_HASH_MASK,
  CTX_PEER_HASH_SHIFT,
  CTX_PEERS,
  CTX_PORT_HASH,
  CTX_PORT_HASH_MASK,
  CTX_PORT_HASH_SHIFT,
  CTX_PORTS,
  DESC_ADDR,
  DESC_ARG,
  DESC_LEN,
  DESC_PTR,
  DESC_SIZE,
  DESC_VERDICT,
  DESC_VNI,
  DP_F_ARP_PROXY,
  DP_F_FLOOD_UNKNOWN,
  DP_F_L2MISS,
  DP_F_LEARNING,
  DP_F_RAW_UNDERLAY,
  DROP_L2_MISS,
  DROP_NO_PEERS,
  DROP_OVERSIZE,
  DROP_TRUNCATED,
  DROP_UNKNOWN_PEER,
  DROP_UNKNOWN_VNI,
  ETH_HLEN,
  EVT_L2_MISS,
  EVT_PEER_LEARNED,
  FDB_CAPACITY_MAX,
  FDB_ENTRY_SIZE,
  NEIGH_ENTRY_SIZE,
  NO_INDEX,
  PEER_F_LEARNED,
  PEER_INDEX_MAX,
  PEER_SIZE,
  PORT_SIZE,
  SOCKADDR_IN_LEN,
  ST_INVALID_PEER,
  ST_OK,
  VERDICT_DROP,
  VERDICT_FLOOD,
  VERDICT_LOCAL,
  VERDICT_REPLY,
  VERDICT_SEND,
  VXLAN_HLEN,
  VXLAN_OVERHEAD_V4,
} from './constants';
import { cnt_add, cnt_drop, cnt_peer, cnt_port } from './counters';
import { event_push } from './events';
import {
  fdb_age,
  fdb_delete_peer,
  fdb_flush_vni,
  fdb_learn,
  fdb_lookup,
  fdb_touch,
  mac_load,
  mac_valid,
} from './fdb';
import { vx_alloc } from './mem';
import { neigh_flush_vni } from './neigh';
import { outer_v4_push } from './outer';
import { peer_add, peer_entry, peer_find, peer_free } from './peers';
import { flood_add, flood_list, flood_remove, port_add, port_free, port_of_vni, port_vni } from './ports';
import { vxlan_read, vxlan_write } from './vxlan';

const NONE: u32 = <u32>NO_INDEX;
/** Bytes readable at a received DESC_ADDR (the I/O layer's sockaddr slots are 32). */
const ADDR_BYTES: u32 = 28;

// ---- Setup ------------------------------------------------------------------------------------

function log2_pow2_at_least(n: u32): u32 {
  let b: u32 = 3; // at least 8 slots
  while ((<u32>1 << b) < n) b++;
  return b;
}

@inline
function region(ctx: usize, field: usize, bytes: usize): usize {
  const p = vx_alloc(bytes);
  store<usize>(ctx + field, p);
  store<u32>(ctx, load<u32>(ctx, CTX_MEM_BYTES) + <u32>bytes, CTX_MEM_BYTES);
  return p;
}

/**
 * Carves out every table for the config the host wrote into ctx (CTX_FDB_CAPACITY ... CTX_FLAGS).
 * Main thread, once. Returns ST_OK, or 1 when a config field is out of range.
 */
export function dp_setup(ctx: usize): i32 {
  const fdbCap = load<u32>(ctx, CTX_FDB_CAPACITY);
  const maxPeers = load<u32>(ctx, CTX_MAX_PEERS);
  const maxPorts = load<u32>(ctx, CTX_MAX_PORTS);
  const neighCap = load<u32>(ctx, CTX_NEIGH_CAPACITY);
  let events = load<u32>(ctx, CTX_EVENT_SLOTS);
  const maxFlood = load<u32>(ctx, CTX_MAX_FLOOD);
  if (fdbCap < 1 || fdbCap > <u32>FDB_CAPACITY_MAX || maxPeers < 1 || maxPeers > <u32>PEER_INDEX_MAX) return 1;
  if (maxPorts < 1 || maxPorts > 65536 || neighCap < 1 || neighCap > <u32>FDB_CAPACITY_MAX) return 1;
  if (events < 1 || events > 1048576 || maxFlood < 1 || maxFlood > maxPeers) return 1;
  store<u32>(ctx, 0, CTX_MEM_BYTES);
  // Hash tables keep at least one slot in nine free, so probing always ends at an empty slot.
  const fdbBits = log2_pow2_at_least(fdbCap + fdbCap / 8 + 1);
  region(ctx, CTX_FDB, (<usize>FDB_ENTRY_SIZE) << fdbBits);
  store<u32>(ctx, ((<u32>1) << fdbBits) - 1, CTX_FDB_MASK);
  store<u32>(ctx, 64 - fdbBits, CTX_FDB_SHIFT);
  store<u32>(ctx, (<u32>FDB_ENTRY_SIZE) << fdbBits, CTX_FDB_BYTES);
  region(ctx, CTX_PEERS, <usize>maxPeers * PEER_SIZE);
  const peerBits = log2_pow2_at_least(maxPeers * 2);
  region(ctx, CTX_PEER_HASH, (<usize>4) << peerBits);
  store<u32>(ctx, ((<u32>1) << peerBits) - 1, CTX_PEER_HASH_MASK);
  store<u32>(ctx, 32 - peerBits, CTX_PEER_HASH_SHIFT);
  region(ctx, CTX_PORTS, <usize>maxPorts * PORT_SIZE);
  const portBits = log2_pow2_at_least(maxPorts * 2);
  region(ctx, CTX_PORT_HASH, (<usize>4) << portBits);
  store<u32>(ctx, ((<u32>1) << portBits) - 1, CTX_PORT_HASH_MASK);
  store<u32>(ctx, 32 - portBits, CTX_PORT_HASH_SHIFT);
  region(ctx, CTX_FLOOD, <usize>maxPorts * (4 + (<usize>maxFlood << 2)));
  const neighBits = log2_pow2_at_least(neighCap + neighCap / 8 + 1);
  region(ctx, CTX_NEIGH, (<usize>NEIGH_ENTRY_SIZE) << neighBits);
  store<u32>(ctx, ((<u32>1) << neighBits) - 1, CTX_NEIGH_MASK);
  store<u32>(ctx, 64 - neighBits, CTX_NEIGH_SHIFT);
  events = (<u32>1) << log2_pow2_at_least(events);
  store<u32>(ctx, events, CTX_EVENT_SLOTS);
  region(ctx, CTX_EVENTS, <usize>events * 16);
  region(ctx, CTX_CNT_GLOBAL, CNT_BLOCK_SIZE);
  region(ctx, CTX_CNT_PORTS, <usize>maxPorts * CNT_BLOCK_SIZE);
  region(ctx, CTX_CNT_PEERS, <usize>maxPeers * CNT_BLOCK_SIZE);
  return ST_OK;
}

// ---- Control: peers and ports (FDB and neighbour batches are exported from fdb.ts/neigh.ts) ---

/** Adds a peer from the sockaddr at `sa`; returns its index, or -ST_*. See peer_add. */
export function dp_peer_add(ctx: usize, sa: usize, len: u32): i32 {
  return peer_add(ctx, sa, len, 0);
}

/** Removes a peer, its FDB entries and its flood-list memberships. */
export function dp_peer_remove(ctx: usize, peer: u32): i32 {
  if (peer >= load<u32>(ctx, CTX_MAX_PEERS) || load<u32>(peer_entry(ctx, peer), 28) == 0) return ST_INVALID_PEER;
  fdb_delete_peer(ctx, peer);
  const maxPorts = load<u32>(ctx, CTX_MAX_PORTS);
  for (let port: u32 = 0; port < maxPorts; port++) if (port_vni(ctx, port) >= 0) flood_remove(ctx, port, peer);
  return peer_free(ctx, peer);
}

/** Adds the local port of `vni`; returns its index (the existing one if any), or -ST_*. */
export function dp_port_add(ctx: usize, vni: u32): i32 {
  return port_add(ctx, vni);
}

/** Removes the port of `vni` with the VNI's FDB entries, neighbours and flood list. */
export function dp_port_remove(ctx: usize, vni: u32): i32 {
  const st = port_free(ctx, vni);
  if (st != ST_OK) return st;
  fdb_flush_vni(ctx, vni);
  neigh_flush_vni(ctx, vni);
  return ST_OK;
}

export function dp_flood_add(ctx: usize, port: u32, peer: u32): i32 {
  if (peer >= load<u32>(ctx, CTX_MAX_PEERS) || load<u32>(peer_entry(ctx, peer), 28) == 0) return ST_INVALID_PEER;
  return flood_add(ctx, port, peer);
}

export function dp_flood_remove(ctx: usize, port: u32, peer: u32): i32 {
  return flood_remove(ctx, port, peer);
}

/** Removes every FDB entry of `vni` (the port stays); returns how many. */
export function dp_fdb_flush_vni(ctx: usize, vni: u32): u32 {
  return fdb_flush_vni(ctx, vni);
}

/** Ages learned FDB entries, looking at up to `budget` slots; returns how many were removed. */
export function dp_age(ctx: usize, now: u32, budget: u32): u32 {
  return fdb_age(ctx, now, budget);
}

// ---- Packets ----------------------------------------------------------------------------------

@inline
function drop(ctx: usize, d: usize, reason: u32, port: u32, peer: u32): void {
  store<u32>(d, VERDICT_DROP, DESC_VERDICT);
  store<u32>(d, reason, DESC_ARG);
  cnt_drop(ctx, reason, port, peer);
}

@inline
function count_tx(block: usize, len: u32): void {
  cnt_add(block, CNT_TX_PACKETS, 1);
  cnt_add(block, CNT_TX_BYTES, len);
}

/** Encapsulates `n` frames (see the top of this file); returns how many were not dropped. */
export function dp_encap(ctx: usize, descs: usize, n: u32, now: u32): u32 {
  const flags = load<u32>(ctx, CTX_FLAGS);
  let kept: u32 = 0;
  const end = descs + <usize>n * DESC_SIZE;
  // First pass: touch every frame's FDB home slot so the cache misses of a large table overlap
  // (see fdb_touch); DESC_VERDICT is a scratch field until the second pass writes the verdict.
  for (let d = descs; d < end; d += DESC_SIZE) {
    const svni = port_vni(ctx, load<u32>(d, DESC_ARG));
    if (svni < 0 || load<u32>(d, DESC_LEN) < <u32>ETH_HLEN) continue;
    store<u32>(d, fdb_touch(ctx, <u32>svni, mac_load(<usize>load<u32>(d, DESC_PTR))), DESC_VERDICT);
  }
  for (let d = descs; d < end; d += DESC_SIZE) {
    const port = load<u32>(d, DESC_ARG);
    const svni = port_vni(ctx, port);
    if (svni < 0) {
      drop(ctx, d, DROP_UNKNOWN_VNI, NONE, NONE);
      continue;
    }
    const vni = <u32>svni;
    const p = <usize>load<u32>(d, DESC_PTR);
    const len = load<u32>(d, DESC_LEN);
    if (len < <u32>ETH_HLEN) {
      drop(ctx, d, DROP_TRUNCATED, port, NONE);
      continue;
    }
    store<u32>(d, vni, DESC_VNI);
    // EtherType 0x0806 (ARP) as a little-endian u16 load.
    if (flags & DP_F_ARP_PROXY && load<u16>(p, 12) == 0x0608) {
      const r = arp_reduce(ctx, vni, p, len);
      if (r < 0) {
        drop(ctx, d, <u32>-r, port, NONE);
        continue;
      }
      store<u32>(d, <u32>r, DESC_LEN);
      store<u32>(d, VERDICT_REPLY, DESC_VERDICT);
      store<u32>(d, 0, DESC_ADDR);
      cnt_add(cnt_port(ctx, port), CNT_REPLIES, 1);
      kept++;
      continue;
    }
    const dst = mac_load(p);
    let peer = NONE;
    if ((dst & 1) == 0) {
      peer = fdb_lookup(ctx, vni, dst);
      if (peer == NONE) {
        if (flags & DP_F_L2MISS) event_push(ctx, EVT_L2_MISS, vni, dst);
        if (!(flags & DP_F_FLOOD_UNKNOWN)) {
          drop(ctx, d, DROP_L2_MISS, port, NONE);
          continue;
        }
      }
    }
    if (peer == NONE) {
      const fl = flood_list(ctx, port);
      if (load<u32>(fl) == 0) {
        drop(ctx, d, DROP_NO_PEERS, port, NONE);
        continue;
      }
      if (!(flags & DP_F_RAW_UNDERLAY)) {
        vxlan_write(p - VXLAN_HLEN, vni);
        store<u32>(d, <u32>(p - VXLAN_HLEN), DESC_PTR);
        store<u32>(d, len + VXLAN_HLEN, DESC_LEN);
      }
      store<u32>(d, VERDICT_FLOOD, DESC_VERDICT);
      store<u32>(d, port, DESC_ARG);
      store<u32>(d, <u32>fl, DESC_ADDR);
      const c = cnt_port(ctx, port);
      count_tx(c, len);
      cnt_add(c, CNT_FLOOD_PACKETS, 1);
      kept++;
      continue;
    }
    const sa = peer_entry(ctx, peer);
    if (flags & DP_F_RAW_UNDERLAY) {
      if (load<u32>(sa, 28) != <u32>SOCKADDR_IN_LEN) {
        drop(ctx, d, DROP_UNKNOWN_PEER, port, peer);
        continue;
      }
      const dport = <u32>bswap<u16>(load<u16>(sa, 2));
      const start = outer_v4_push(p, len, vni, load<usize>(ctx, CTX_OUTER), load<u32>(sa, 4), dport);
      if (start == 0) {
        drop(ctx, d, DROP_OVERSIZE, port, peer);
        continue;
      }
      store<u32>(d, <u32>start, DESC_PTR);
      store<u32>(d, len + VXLAN_OVERHEAD_V4, DESC_LEN);
    } else {
      vxlan_write(p - VXLAN_HLEN, vni);
      store<u32>(d, <u32>(p - VXLAN_HLEN), DESC_PTR);
      store<u32>(d, len + VXLAN_HLEN, DESC_LEN);
    }
    store<u32>(d, VERDICT_SEND, DESC_VERDICT);
    store<u32>(d, peer, DESC_ARG);
    store<u32>(d, <u32>sa, DESC_ADDR);
    count_tx(cnt_port(ctx, port), len);
    count_tx(cnt_peer(ctx, peer), len);
    kept++;
  }
  return kept;
}

/** Decapsulates `n` datagrams (see the top of this file); returns how many are delivered. */
export function dp_decap(ctx: usize, descs: usize, n: u32, now: u32): u32 {
  const flags = load<u32>(ctx, CTX_FLAGS);
  let kept: u32 = 0;
  const end = descs + <usize>n * DESC_SIZE;
  if (flags & DP_F_LEARNING) {
    // As in encap: overlap the FDB cache misses of learning's lookups of the inner source MACs.
    for (let d = descs; d < end; d += DESC_SIZE) {
      const p = <usize>load<u32>(d, DESC_PTR);
      const len = load<u32>(d, DESC_LEN);
      if (len < <u32>(VXLAN_HLEN + ETH_HLEN)) continue;
      const vni = bswap<u32>(load<u32>(p, 4)) >>> 8;
      store<u32>(d, fdb_touch(ctx, vni, mac_load(p + VXLAN_HLEN + 6)), DESC_VERDICT);
    }
  }
  for (let d = descs; d < end; d += DESC_SIZE) {
    const p = <usize>load<u32>(d, DESC_PTR);
    const len = load<u32>(d, DESC_LEN);
    const sa = <usize>load<u32>(d, DESC_ADDR);
    let peer = peer_find(ctx, sa, ADDR_BYTES);
    const r = vxlan_read(p, len);
    if (r < 0) {
      drop(ctx, d, <u32>-r, NONE, peer);
      continue;
    }
    const vni = <u32>r;
    const port = port_of_vni(ctx, vni);
    if (port == NONE) {
      drop(ctx, d, DROP_UNKNOWN_VNI, NONE, peer);
      continue;
    }
    const inner = p + VXLAN_HLEN;
    const ilen = len - VXLAN_HLEN;
    if (ilen < <u32>ETH_HLEN) {
      drop(ctx, d, DROP_TRUNCATED, port, peer);
      continue;
    }
    if (peer == NONE) {
      const added = flags & DP_F_LEARNING ? peer_add(ctx, sa, ADDR_BYTES, PEER_F_LEARNED) : -1;
      if (added < 0) {
        drop(ctx, d, DROP_UNKNOWN_PEER, port, NONE);
        continue;
      }
      peer = <u32>added;
      event_push(ctx, EVT_PEER_LEARNED, vni, <u64>peer);
    }
    if (flags & DP_F_LEARNING) {
      const src = mac_load(inner + 6);
      if (mac_valid(src)) {
        const l = fdb_learn(ctx, vni, src, peer, now);
        if (l > 0) cnt_add(cnt_port(ctx, port), CNT_LEARNED, 1);
        else if (l < 0) cnt_add(cnt_port(ctx, port), CNT_LEARN_REFUSED, 1);
      }
    }
    store<u32>(d, <u32>inner, DESC_PTR);
    store<u32>(d, ilen, DESC_LEN);
    store<u32>(d, VERDICT_LOCAL, DESC_VERDICT);
    store<u32>(d, port, DESC_ARG);
    store<u32>(d, vni, DESC_VNI);
    const cp = cnt_port(ctx, port);
    cnt_add(cp, CNT_RX_PACKETS, 1);
    cnt_add(cp, CNT_RX_BYTES, ilen);
    const cq = cnt_peer(ctx, peer);
    cnt_add(cq, CNT_RX_PACKETS, 1);
    cnt_add(cq, CNT_RX_BYTES, ilen);
    kept++;
  }
  return kept;
}
