// Counter blocks: u64 packet/byte/drop counters in linear memory that the host reads directly.
//
// One block (CNT_BLOCK_SIZE bytes) for the whole datapath, one per port and one per peer. Only the
// thread running the datapath writes them, so plain (non-atomic) adds suffice; a host reading from
// another thread may see a value one batch old, never a torn one that matters for monitoring.
import { CNT_BLOCK_SIZE, CNT_DROPS, CTX_CNT_GLOBAL, CTX_CNT_PEERS, CTX_CNT_PORTS } from './constants';

@inline
export function cnt_add(block: usize, field: usize, n: u64): void {
  store<u64>(block + field, load<u64>(block + field) + n);
}

@inline
export function cnt_port(ctx: usize, port: u32): usize {
  return load<usize>(ctx, CTX_CNT_PORTS) + <usize>port * CNT_BLOCK_SIZE;
}

@inline
export function cnt_peer(ctx: usize, peer: u32): usize {
  return load<usize>(ctx, CTX_CNT_PEERS) + <usize>peer * CNT_BLOCK_SIZE;
}

/** Counts a drop in the global block and, when known (not NO_INDEX), the port's and peer's. */
export function cnt_drop(ctx: usize, reason: u32, port: u32, peer: u32): void {
  const off = <usize>CNT_DROPS + (<usize>reason << 3);
  cnt_add(load<usize>(ctx, CTX_CNT_GLOBAL), off, 1);
  if (port != 0xffffffff) cnt_add(cnt_port(ctx, port), off, 1);
  if (peer != 0xffffffff) cnt_add(cnt_peer(ctx, peer), off, 1);
}
