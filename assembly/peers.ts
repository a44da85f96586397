// The peer table: remote tunnel endpoints as prebuilt Linux socket addresses.
//
// Entry i (PEER_SIZE bytes) starts with the peer's `sockaddr_in` or `sockaddr_in6` exactly as the
// kernel wants it, so an encap verdict hands the host a pointer (DESC_ADDR) that sendmmsg's
// msg_name can use as is. A second, open-addressing table of u32 slots (peer index + 1) finds a
// peer by the source address of a received datagram (family, port and address compared; IPv6
// flowinfo and scope are ignored). Indexes are stable while a peer exists and are reused lowest
// first. Single writer: the datapath's thread.
import {
  AF_INET,
  AF_INET6,
  CNT_BLOCK_SIZE,
  CTX_CNT_PEERS,
  CTX_MAX_PEERS,
  CTX_PEER_COUNT,
  CTX_PEER_HASH,
  CTX_PEER_HASH_MASK,
  CTX_PEER_HASH_SHIFT,
  CTX_PEERS,
  NO_INDEX,
  PEER_ADDRLEN,
  PEER_FLAGS,
  PEER_HASH,
  PEER_SIZE,
  SOCKADDR_IN6_LEN,
  SOCKADDR_IN_LEN,
  ST_INVALID_ADDR,
  ST_INVALID_PEER,
  ST_OK,
  ST_PEER_TABLE_FULL,
} from './constants';

@inline
export function peer_entry(ctx: usize, peer: u32): usize {
  return load<usize>(ctx, CTX_PEERS) + <usize>peer * PEER_SIZE;
}

/** The sockaddr length for a valid address at `sa` (`len` bytes available), else 0. */
@inline
function sa_len(sa: usize, len: u32): u32 {
  const family = <u32>load<u16>(sa);
  if (family == AF_INET && len >= <u32>SOCKADDR_IN_LEN) return SOCKADDR_IN_LEN;
  if (family == AF_INET6 && len >= <u32>SOCKADDR_IN6_LEN) return SOCKADDR_IN6_LEN;
  return 0;
}

/** Hash of family, port and address (full 32 bits; slots use the top bits). */
@inline
function sa_hash(sa: usize): u32 {
  let x = <u64>load<u32>(sa); // family and port
  if (<u32>load<u16>(sa) == AF_INET) {
    x ^= <u64>load<u32>(sa, 4) << 32;
  } else {
    x ^= (load<u64>(sa, 8) * 0xff51afd7ed558ccd) ^ (load<u64>(sa, 16) * 0xc4ceb9fe1a85ec53);
  }
  x *= 0x9e3779b97f4a7c15;
  return <u32>(x >> 32);
}

@inline
function sa_equal(a: usize, b: usize): bool {
  if (load<u32>(a) != load<u32>(b)) return false; // family and port
  if (<u32>load<u16>(a) == AF_INET) return load<u32>(a, 4) == load<u32>(b, 4);
  return load<u64>(a, 8) == load<u64>(b, 8) && load<u64>(a, 16) == load<u64>(b, 16);
}

@inline
function hash_slot(ctx: usize, h: u32): u32 {
  return h >>> load<u32>(ctx, CTX_PEER_HASH_SHIFT);
}

/** The index of the peer whose address equals the sockaddr at `sa`, or NO_INDEX. */
export function peer_find(ctx: usize, sa: usize, len: u32): u32 {
  if (sa == 0 || sa_len(sa, len) == 0) return <u32>NO_INDEX;
  const slots = load<usize>(ctx, CTX_PEER_HASH);
  const mask = load<u32>(ctx, CTX_PEER_HASH_MASK);
  let i = hash_slot(ctx, sa_hash(sa));
  while (true) {
    const v = load<u32>(slots + (<usize>i << 2));
    if (v == 0) return <u32>NO_INDEX;
    if (sa_equal(peer_entry(ctx, v - 1), sa)) return v - 1;
    i = (i + 1) & mask;
  }
}

/**
 * Adds the peer whose sockaddr is at `sa` (`len` bytes) and returns its index, or the index it
 * already has (adding twice is not an error); -ST_INVALID_ADDR or -ST_PEER_TABLE_FULL on failure.
 * `flags` are PEER_F_*; a control-plane add (flags 0) of a learned peer makes it a configured one.
 */
export function peer_add(ctx: usize, sa: usize, len: u32, flags: u32): i32 {
  const n = sa_len(sa, len);
  if (n == 0) return -ST_INVALID_ADDR;
  const found = peer_find(ctx, sa, len);
  if (found != <u32>NO_INDEX) {
    const e = peer_entry(ctx, found);
    store<u32>(e, load<u32>(e, PEER_FLAGS) & flags, PEER_FLAGS);
    return <i32>found;
  }
  const max = load<u32>(ctx, CTX_MAX_PEERS);
  let idx: u32 = 0;
  while (idx < max && load<u32>(peer_entry(ctx, idx), PEER_ADDRLEN) != 0) idx++;
  if (idx == max) return -ST_PEER_TABLE_FULL;
  const e = peer_entry(ctx, idx);
  memory.fill(e, 0, PEER_SIZE);
  memory.copy(e, sa, n);
  if (n == SOCKADDR_IN_LEN) store<u64>(e, 0, 8); // sin_zero
  else store<u32>(e, 0, 4); // flowinfo: not part of the peer's identity
  const h = sa_hash(e);
  store<u32>(e, n, PEER_ADDRLEN);
  store<u32>(e, flags, PEER_FLAGS);
  store<u32>(e, h, PEER_HASH);
  memory.fill(load<usize>(ctx, CTX_CNT_PEERS) + <usize>idx * CNT_BLOCK_SIZE, 0, CNT_BLOCK_SIZE);
  const slots = load<usize>(ctx, CTX_PEER_HASH);
  const mask = load<u32>(ctx, CTX_PEER_HASH_MASK);
  let i = hash_slot(ctx, h);
  while (load<u32>(slots + (<usize>i << 2)) != 0) i = (i + 1) & mask;
  store<u32>(slots + (<usize>i << 2), idx + 1);
  store<u32>(ctx, load<u32>(ctx, CTX_PEER_COUNT) + 1, CTX_PEER_COUNT);
  return <i32>idx;
}

/** Frees peer `idx` from the table and the address hash. FDB and flood lists are the caller's. */
export function peer_free(ctx: usize, idx: u32): i32 {
  if (idx >= load<u32>(ctx, CTX_MAX_PEERS)) return ST_INVALID_PEER;
  const e = peer_entry(ctx, idx);
  if (load<u32>(e, PEER_ADDRLEN) == 0) return ST_INVALID_PEER;
  const slots = load<usize>(ctx, CTX_PEER_HASH);
  const mask = load<u32>(ctx, CTX_PEER_HASH_MASK);
  let i = hash_slot(ctx, load<u32>(e, PEER_HASH));
  while (load<u32>(slots + (<usize>i << 2)) != idx + 1) i = (i + 1) & mask;
  // Backward-shift delete, as in the FDB.
  let j = i;
  while (true) {
    j = (j + 1) & mask;
    const v = load<u32>(slots + (<usize>j << 2));
    if (v == 0) break;
    const k = hash_slot(ctx, load<u32>(peer_entry(ctx, v - 1), PEER_HASH));
    const stays = i <= j ? i < k && k <= j : i < k || k <= j;
    if (stays) continue;
    store<u32>(slots + (<usize>i << 2), v);
    i = j;
  }
  store<u32>(slots + (<usize>i << 2), 0);
  store<u32>(e, 0, PEER_ADDRLEN);
  store<u32>(ctx, load<u32>(ctx, CTX_PEER_COUNT) - 1, CTX_PEER_COUNT);
  return ST_OK;
}
