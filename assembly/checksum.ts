// The Internet checksum (RFC 1071), its incremental update (RFC 1624) and the IPv4/UDP/TCP uses.
//
// Byte order: every sum here is taken over 16-bit words loaded in the machine's (little-endian)
// order, like Linux's __wsum. RFC 1071 section 2(B) shows the ones'-complement sum is independent of
// byte order, so nothing is swapped per word: the folded result is already in memory order, and
// `store<u16>(field, csum_fold(sum))` writes the right wire bytes. Values that come from outside in
// host order (lengths, protocol numbers in a pseudo-header) are swapped once, not the data.
//
// Speed: `csum_partial` does 64 bytes per iteration with four v128 accumulators. Each 16-byte load
// is biased (xor 0x8000 per u16, making the words signed) and summed in pairs into i32 lanes by
// `i32x4.dot_i16x8_s` with ones, a single pmaddwd on x86 (V8 lowers extadd_pairwise_i16x8_u to a
// shift, a blend and an add). The bias, 0x10000 per pair, is added back once per block; blocks of
// CSUM_BLOCK iterations keep the lanes within i32, and each block is folded into a u64. Loads are
// unaligned-safe in WASM, so any address works; bytes are always paired relative to `p`, as the
// RFC wants. The shorter tail uses extadd_pairwise (no bias to undo) and then scalar loads.
import {
  CSUM_V_BAD,
  CSUM_V_IP_BAD,
  CSUM_V_IP_OK,
  CSUM_V_L4_BAD,
  CSUM_V_L4_NONE,
  CSUM_V_L4_OK,
  DESC_AUX,
  DESC_AUX2,
  DESC_LEN,
  DESC_PTR,
  DESC_SIZE,
  IPPROTO_TCP,
  IPPROTO_UDP,
  PARSE_F_FRAG,
  PARSE_F_IPV4,
  PARSE_F_TCP,
  PARSE_F_UDP,
  PARSE_FLAGS,
  PARSE_L3_OFF,
  PARSE_L4_OFF,
  PARSE_L4_PROTO,
  PARSE_PAYLOAD_LEN,
  PARSE_PAYLOAD_OFF,
  PARSE_SIZE,
} from './constants';

/** Iterations of the 64-byte loop per block: four lanes of +-0x10000 * n must sum below 2^31. */
const CSUM_BLOCK: u32 = 8191;

/** Adds two 32-bit partial sums with end-around carry. */
@inline
export function csum_add(a: u32, b: u32): u32 {
  const s = a + b;
  return s + <u32>(s < b);
}

/** Subtracts partial sum `b` from `a` (adds its ones' complement). */
@inline
export function csum_sub(a: u32, b: u32): u32 {
  return csum_add(a, ~b);
}

/** Folds a 64-bit sum of words to a 32-bit partial sum (end-around carries). */
@inline
function fold64(s: u64): u32 {
  s = (s & 0xffffffff) + (s >>> 32);
  s = (s & 0xffffffff) + (s >>> 32);
  return <u32>s;
}

/** Folds a 32-bit partial sum to 16 bits and complements it: the checksum field, in memory order. */
@inline
export function csum_fold(sum: u32): u16 {
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  return <u16>~sum;
}

/** Sum of the u32 lanes of a v128 as u64. */
@inline
function lanes64(v: v128): u64 {
  const w = i64x2.add(i64x2.extend_low_i32x4_u(v), i64x2.extend_high_i32x4_u(v));
  return i64x2.extract_lane(w, 0) + i64x2.extract_lane(w, 1);
}

/** Sums the bytes [p, p+len) below 64: 16, 8, 4, 2, then 1 at a time. */
@inline
function csum_tail(p: usize, len: u32): u64 {
  let s: u64 = 0;
  if (len >= 32) {
    const v = i32x4.add(
      i32x4.extadd_pairwise_i16x8_u(v128.load(p)),
      i32x4.extadd_pairwise_i16x8_u(v128.load(p, 16)),
    );
    s += lanes64(v);
    p += 32;
    len -= 32;
  }
  if (len >= 16) {
    s += lanes64(i32x4.extadd_pairwise_i16x8_u(v128.load(p)));
    p += 16;
    len -= 16;
  }
  if (len >= 8) {
    const w = load<u64>(p);
    s += (w & 0xffffffff) + (w >>> 32);
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    s += <u64>load<u32>(p);
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    s += <u64>load<u16>(p);
    p += 2;
    len -= 2;
  }
  // An odd last byte is the high byte of a big-endian word padded with zero, which is the low byte
  // of a little-endian one.
  if (len) s += <u64>load<u8>(p);
  return s;
}

/** Sum of the (signed) i32 lanes of a v128 as i64. */
@inline
function lanes64s(v: v128): i64 {
  const w = i64x2.add(i64x2.extend_low_i32x4_s(v), i64x2.extend_high_i32x4_s(v));
  return i64x2.extract_lane(w, 0) + i64x2.extract_lane(w, 1);
}

/**
 * Sums whole 64-byte iterations; `iters` <= CSUM_BLOCK. Each u16 word x is biased to the signed
 * x - 0x8000 (an xor), so `i32x4.dot_i16x8_s` with ones (one pmaddwd) adds neighbouring words into
 * i32 lanes; the bias, 0x10000 per pair of words, is added back once per block. This is one
 * instruction per 16 bytes fewer than widening with extadd_pairwise_i16x8_u.
 */
@inline
function csum_block(p: usize, iters: u32): u64 {
  const bias = i16x8.splat(-32768);
  const ones = i16x8.splat(1);
  let a0 = i32x4.splat(0);
  let a1 = i32x4.splat(0);
  let a2 = i32x4.splat(0);
  let a3 = i32x4.splat(0);
  const end = p + (<usize>iters << 6);
  while (p < end) {
    a0 = i32x4.add(a0, i32x4.dot_i16x8_s(v128.xor(v128.load(p), bias), ones));
    a1 = i32x4.add(a1, i32x4.dot_i16x8_s(v128.xor(v128.load(p, 16), bias), ones));
    a2 = i32x4.add(a2, i32x4.dot_i16x8_s(v128.xor(v128.load(p, 32), bias), ones));
    a3 = i32x4.add(a3, i32x4.dot_i16x8_s(v128.xor(v128.load(p, 48), bias), ones));
    p += 64;
  }
  // Lanes stay within +-0x10000 * CSUM_BLOCK, so the four fit one i32x4 sum.
  const s = lanes64s(i32x4.add(i32x4.add(a0, a1), i32x4.add(a2, a3)));
  // 16 pairs per iteration, each biased by -0x10000.
  return <u64>(s + (<i64>iters << 20));
}

/**
 * Ones'-complement sum of the bytes [p, p+len) added to `sum`: a 32-bit partial sum, not folded and
 * not complemented (fold it with `csum_fold`). `p` may have any alignment.
 */
@inline
export function csum_partial(p: usize, len: u32, sum: u32): u32 {
  let s: u64 = <u64>sum;
  let iters = len >>> 6;
  while (iters) {
    const n = iters < CSUM_BLOCK ? iters : CSUM_BLOCK;
    s += csum_block(p, n);
    p += <usize>n << 6;
    iters -= n;
  }
  s += csum_tail(p, len & 63);
  return fold64(s);
}

/**
 * The checksum of the IPv4 header at `p` as it stands, including its checksum field (like Linux's
 * ip_fast_csum): 0 for a received header that is intact; when building, zero bytes 10-11 first and
 * store the result there with `store<u16>(p, x, 10)`. The IHL is read from byte 0 and must already
 * be checked against the buffer (5..15).
 */
@inline
export function csum_ipv4_hdr(p: usize): u16 {
  const ihl = <u32>load<u8>(p) & 0xf;
  if (ihl == 5) {
    let s: u64 = <u64>load<u32>(p) + <u64>load<u32>(p, 4) + <u64>load<u32>(p, 8);
    s += <u64>load<u32>(p, 12) + <u64>load<u32>(p, 16);
    return csum_fold(fold64(s));
  }
  return csum_fold(csum_partial(p, ihl << 2, 0));
}

/**
 * The partial sum of the IPv4 pseudo-header (RFC 768/793): addresses in memory order as loaded
 * from the packet (`load<u32>`), protocol and L4 length as host numbers.
 */
@inline
export function csum_pseudo_v4(saddr: u32, daddr: u32, proto: u32, len: u32): u32 {
  // The third and fourth words are 00 pp and the length, big-endian: one byte-swapped u32.
  const s: u64 = <u64>saddr + <u64>daddr + <u64>bswap<u32>((proto << 16) + len);
  return fold64(s);
}

/** The partial sum of the IPv6 pseudo-header (RFC 8200 8.1): 16-byte addresses at `saddr`/`daddr`. */
@inline
export function csum_pseudo_v6(saddr: usize, daddr: usize, proto: u32, len: u32): u32 {
  let s: u64 = <u64>load<u32>(saddr) + <u64>load<u32>(saddr, 4) + <u64>load<u32>(saddr, 8);
  s += <u64>load<u32>(saddr, 12) + <u64>load<u32>(daddr) + <u64>load<u32>(daddr, 4);
  s += <u64>load<u32>(daddr, 8) + <u64>load<u32>(daddr, 12);
  s += <u64>bswap<u32>(len) + <u64>bswap<u32>(proto);
  return fold64(s);
}

/**
 * The UDP or TCP checksum over IPv4: the L4 segment [l4, l4+len) (its checksum field zeroed when
 * building, as received when verifying), with the pseudo-header of the IPv4 header at `ip`.
 * Building: store the result. Verifying: a result of 0 means intact. For UDP, a computed 0 must be
 * sent as 0xffff (`csum_udp_wire`), and a received 0 field means "no checksum" (`csum_udp4_ok`).
 */
@inline
export function csum_l4_v4(ip: usize, proto: u32, l4: usize, len: u32): u16 {
  const ph = csum_pseudo_v4(load<u32>(ip, 12), load<u32>(ip, 16), proto, len);
  return csum_fold(csum_partial(l4, len, ph));
}

/** As `csum_l4_v4`, with the pseudo-header of the IPv6 header at `ip` (no extension headers). */
@inline
export function csum_l4_v6(ip: usize, proto: u32, l4: usize, len: u32): u16 {
  const ph = csum_pseudo_v6(ip + 8, ip + 24, proto, len);
  return csum_fold(csum_partial(l4, len, ph));
}

/** A computed UDP checksum as it goes on the wire: 0 means "none" there, so it is sent as 0xffff. */
@inline
export function csum_udp_wire(c: u16): u16 {
  return c == 0 ? 0xffff : c;
}

/** True when the UDP datagram at `l4` (length `len`) inside the IPv4 header at `ip` passes: a zero field is accepted. */
@inline
export function csum_udp4_ok(ip: usize, l4: usize, len: u32): bool {
  if (load<u16>(l4, 6) == 0) return true;
  return csum_l4_v4(ip, IPPROTO_UDP, l4, len) == 0;
}

/** True when the TCP segment at `l4` (length `len`) inside the IPv4 header at `ip` passes. */
@inline
export function csum_tcp4_ok(ip: usize, l4: usize, len: u32): bool {
  return csum_l4_v4(ip, IPPROTO_TCP, l4, len) == 0;
}

/**
 * RFC 1624 eqn. 3: the checksum field `check` after a 16-bit word of the covered data changed from
 * `old` to `new_` (all three in memory order): HC' = ~(~HC + ~m + m').
 */
@inline
export function csum_replace16(check: u16, old: u16, new_: u16): u16 {
  const s: u32 = <u32>(~check & 0xffff) + <u32>(~old & 0xffff) + <u32>new_;
  return csum_fold(s);
}

/** As `csum_replace16` for an aligned 32-bit word (an IPv4 address), in memory order. */
@inline
export function csum_replace32(check: u16, old: u32, new_: u32): u16 {
  const s: u64 = <u64>(~check & 0xffff) + <u64>(~old) + <u64>new_;
  return csum_fold(fold64(s));
}

// ---- Batch exports for the host: one call per batch of descriptors ----------------------------

/**
 * For each of `n` descriptors at `descs` (DESC_PTR/DESC_LEN), writes the folded checksum of the
 * packet bytes (memory order, as a u32) into DESC_AUX. The bench and the host-side tests use it.
 */
export function csum_batch(descs: usize, n: u32): void {
  for (let i: u32 = 0; i < n; i++) {
    const d = descs + <usize>i * DESC_SIZE;
    const c = csum_fold(csum_partial(<usize>load<u32>(d + DESC_PTR), load<u32>(d + DESC_LEN), 0));
    store<u32>(d + DESC_AUX, <u32>c);
  }
}

/** The unfolded partial sum of [p, p+len) added to `sum`: one region, for tests and tools. */
export function csum_partial_at(p: usize, len: u32, sum: u32): u32 {
  return csum_partial(p, len, sum);
}

/**
 * Verifies the checksums of `n` parsed frames: descriptor i (DESC_PTR/DESC_LEN) with its parse
 * record at recs + i * PARSE_SIZE (from `parse_batch`). Writes CSUM_V_* bits into DESC_AUX2: the
 * IPv4 header checksum, and the UDP/TCP checksum with the IPv4 or IPv6 pseudo-header (not for
 * fragments). Returns how many frames had every checksum they carry intact.
 */
export function csum_verify_batch(descs: usize, n: u32, recs: usize): u32 {
  let good: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const d = descs + <usize>i * DESC_SIZE;
    const r = recs + <usize>i * PARSE_SIZE;
    const v = csum_verify_one(<usize>load<u32>(d + DESC_PTR), r);
    store<u32>(d + DESC_AUX2, v);
    good += <u32>((v & CSUM_V_BAD) == 0);
  }
  return good;
}

@inline
function csum_verify_one(p: usize, r: usize): u32 {
  const flags = load<u32>(r + PARSE_FLAGS);
  const ip = p + <usize>load<u32>(r + PARSE_L3_OFF);
  let v: u32 = 0;
  if (flags & PARSE_F_IPV4) v |= csum_ipv4_hdr(ip) == 0 ? CSUM_V_IP_OK : CSUM_V_IP_BAD;
  if ((flags & (PARSE_F_UDP | PARSE_F_TCP)) == 0 || (flags & PARSE_F_FRAG) != 0) return v;
  const l4off = load<u32>(r + PARSE_L4_OFF);
  const l4 = p + <usize>l4off;
  const l4len = load<u32>(r + PARSE_PAYLOAD_OFF) + load<u32>(r + PARSE_PAYLOAD_LEN) - l4off;
  const proto = load<u32>(r + PARSE_L4_PROTO);
  if ((flags & PARSE_F_UDP) != 0 && load<u16>(l4, 6) == 0) return v | CSUM_V_L4_NONE;
  const c = flags & PARSE_F_IPV4 ? csum_l4_v4(ip, proto, l4, l4len) : csum_l4_v6(ip, proto, l4, l4len);
  return v | (c == 0 ? CSUM_V_L4_OK : CSUM_V_L4_BAD);
}
