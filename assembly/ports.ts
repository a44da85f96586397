// Local ports: one per VNI (the TAP of that network's namespace), with its flood list.
//
// A port index is what decap delivers to (VERDICT_LOCAL) and what encap takes as the frame's
// source; a small open-addressing table of u32 slots (port index + 1) maps a VNI to its port for
// the per-datagram demux. Each port has a flood list of peer indexes for head-end replication of
// broadcast, multicast and (by option) unknown unicast; VERDICT_FLOOD points DESC_ADDR at it.
// Single writer: the datapath's thread.
import {
  CNT_BLOCK_SIZE,
  CTX_CNT_PORTS,
  CTX_FLOOD,
  CTX_MAX_FLOOD,
  CTX_MAX_PORTS,
  CTX_PORT_COUNT,
  CTX_PORT_HASH,
  CTX_PORT_HASH_MASK,
  CTX_PORT_HASH_SHIFT,
  CTX_PORTS,
  NO_INDEX,
  PORT_SIZE,
  PORT_USED,
  PORT_VNI,
  ST_FLOOD_FULL,
  ST_INVALID_PORT,
  ST_INVALID_VNI,
  ST_NOT_FOUND,
  ST_OK,
  ST_PORT_TABLE_FULL,
  VNI_MAX,
} from './constants';

@inline
export function port_entry(ctx: usize, port: u32): usize {
  return load<usize>(ctx, CTX_PORTS) + <usize>port * PORT_SIZE;
}

@inline
function vni_slot(ctx: usize, vni: u32): u32 {
  return (vni * 0x9e3779b1) >>> load<u32>(ctx, CTX_PORT_HASH_SHIFT);
}

/** The port of `vni`, or NO_INDEX. */
@inline
export function port_of_vni(ctx: usize, vni: u32): u32 {
  const slots = load<usize>(ctx, CTX_PORT_HASH);
  const mask = load<u32>(ctx, CTX_PORT_HASH_MASK);
  let i = vni_slot(ctx, vni);
  while (true) {
    const v = load<u32>(slots + (<usize>i << 2));
    if (v == 0) return <u32>NO_INDEX;
    if (load<u32>(port_entry(ctx, v - 1), PORT_VNI) == vni) return v - 1;
    i = (i + 1) & mask;
  }
}

/** The VNI of `port` if it is in use, else -1. */
@inline
export function port_vni(ctx: usize, port: u32): i32 {
  if (port >= load<u32>(ctx, CTX_MAX_PORTS)) return -1;
  const e = port_entry(ctx, port);
  return load<u32>(e, PORT_USED) ? <i32>load<u32>(e, PORT_VNI) : -1;
}

@inline
export function flood_list(ctx: usize, port: u32): usize {
  return load<usize>(ctx, CTX_FLOOD) + <usize>port * (4 + (<usize>load<u32>(ctx, CTX_MAX_FLOOD) << 2));
}

/** Adds the port for `vni` and returns its index (the existing one if there is one), or -ST_*. */
export function port_add(ctx: usize, vni: u32): i32 {
  if (vni > <u32>VNI_MAX) return -ST_INVALID_VNI;
  const found = port_of_vni(ctx, vni);
  if (found != <u32>NO_INDEX) return <i32>found;
  const max = load<u32>(ctx, CTX_MAX_PORTS);
  let idx: u32 = 0;
  while (idx < max && load<u32>(port_entry(ctx, idx), PORT_USED) != 0) idx++;
  if (idx == max) return -ST_PORT_TABLE_FULL;
  const e = port_entry(ctx, idx);
  store<u32>(e, vni, PORT_VNI);
  store<u32>(e, 1, PORT_USED);
  store<u32>(flood_list(ctx, idx), 0);
  memory.fill(load<usize>(ctx, CTX_CNT_PORTS) + <usize>idx * CNT_BLOCK_SIZE, 0, CNT_BLOCK_SIZE);
  const slots = load<usize>(ctx, CTX_PORT_HASH);
  const mask = load<u32>(ctx, CTX_PORT_HASH_MASK);
  let i = vni_slot(ctx, vni);
  while (load<u32>(slots + (<usize>i << 2)) != 0) i = (i + 1) & mask;
  store<u32>(slots + (<usize>i << 2), idx + 1);
  store<u32>(ctx, load<u32>(ctx, CTX_PORT_COUNT) + 1, CTX_PORT_COUNT);
  return <i32>idx;
}

/** Unmaps `vni` and frees its port. FDB and neighbour entries of the VNI are the caller's. */
export function port_free(ctx: usize, vni: u32): i32 {
  const port = port_of_vni(ctx, vni);
  if (port == <u32>NO_INDEX) return ST_NOT_FOUND;
  const slots = load<usize>(ctx, CTX_PORT_HASH);
  const mask = load<u32>(ctx, CTX_PORT_HASH_MASK);
  let i = vni_slot(ctx, vni);
  while (load<u32>(slots + (<usize>i << 2)) != port + 1) i = (i + 1) & mask;
  let j = i;
  while (true) {
    j = (j + 1) & mask;
    const v = load<u32>(slots + (<usize>j << 2));
    if (v == 0) break;
    const k = vni_slot(ctx, load<u32>(port_entry(ctx, v - 1), PORT_VNI));
    const stays = i <= j ? i < k && k <= j : i < k || k <= j;
    if (stays) continue;
    store<u32>(slots + (<usize>i << 2), v);
    i = j;
  }
  store<u32>(slots + (<usize>i << 2), 0);
  store<u32>(port_entry(ctx, port), 0, PORT_USED);
  store<u32>(flood_list(ctx, port), 0);
  store<u32>(ctx, load<u32>(ctx, CTX_PORT_COUNT) - 1, CTX_PORT_COUNT);
  return ST_OK;
}

/** Adds `peer` to the flood list of `port` (no-op if there). */
export function flood_add(ctx: usize, port: u32, peer: u32): i32 {
  if (port_vni(ctx, port) < 0) return ST_INVALID_PORT;
  const fl = flood_list(ctx, port);
  const n = load<u32>(fl);
  for (let k: u32 = 0; k < n; k++) if (load<u32>(fl + 4 + (<usize>k << 2)) == peer) return ST_OK;
  if (n >= load<u32>(ctx, CTX_MAX_FLOOD)) return ST_FLOOD_FULL;
  store<u32>(fl + 4 + (<usize>n << 2), peer);
  store<u32>(fl, n + 1);
  return ST_OK;
}

/** Removes `peer` from the flood list of `port`, keeping the order of the others. */
export function flood_remove(ctx: usize, port: u32, peer: u32): i32 {
  if (port_vni(ctx, port) < 0) return ST_INVALID_PORT;
  const fl = flood_list(ctx, port);
  const n = load<u32>(fl);
  for (let k: u32 = 0; k < n; k++) {
    const at = fl + 4 + (<usize>k << 2);
    if (load<u32>(at) != peer) continue;
    memory.copy(at, at + 4, <usize>(n - k - 1) << 2);
    store<u32>(fl, n - 1);
    return ST_OK;
  }
  return ST_NOT_FOUND;
}
