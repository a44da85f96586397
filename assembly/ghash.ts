// GHASH (NIST SP 800-38D, section 6.4): multiplication in GF(2^128) by the hash key H, constant-time.
//
// Technique: carry-less multiplication emulated with ordinary integer multiplies "with holes"
// (the BearSSL ctmul64 idea). Each 64-bit operand is split into four parts that keep every fourth
// bit; the integer product of two such parts has at most 16 terms per 4-bit digit, so inside the low
// 64 bits no carry ever reaches the next kept bit, and masking the sums of the right part products
// yields the exact carry-less product's low 64 bits. The high 64 bits come from the same routine on
// bit-reversed operands. A 128x128 product is three such 64x64 products (Karatsuba). Everything is
// i64.mul, AND, XOR and shifts on secret data with no secret-dependent address or branch, which is
// why it is constant-time (i64.mul is fixed-latency on the x86-64 and ARM64 cores Node runs on).
//
// Speed: blocks are hashed four at a time against precomputed H^4, H^3, H^2, H (aggregated
// reduction): the four unreduced products are summed, and the bit reversal of the high halves, the
// Karatsuba recombination and the reduction modulo x^128 + x^7 + x^2 + x + 1 happen once per four
// blocks. The H parts (masked, bit-reversed) are precomputed once per key.
//
// Values: a GHASH state or block travels as a v128 in memory byte order. Internally a block is two
// big-endian u64 words, hi = bytes 0..7 and lo = bytes 8..15, in GHASH's bit-reflected convention.

/** Bytes of the GHASH key (H^1..H^4, 192 bytes each). */
export const GHASH_KEY_BYTES: i32 = 768;
const POWER_BYTES: usize = 192;

const M0: u64 = 0x1111111111111111;
const M1: u64 = 0x2222222222222222;
const M2: u64 = 0x4444444444444444;
const M3: u64 = 0x8888888888888888;

/** Byte-reverses each 64-bit half: memory order <-> two big-endian u64 lanes. */
@inline function bswap64x2(v: v128): v128 {
  return i8x16.shuffle(v, v, 7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8);
}

/** Reverses the bits inside every byte (masks and shifts only). */
@inline function bitrevBytes(v: v128): v128 {
  const m1 = i8x16.splat(0x55);
  const m2 = i8x16.splat(0x33);
  const m4 = i8x16.splat(0x0f);
  v = v128.or(v128.and(i64x2.shr_u(v, 1), m1), i64x2.shl(v128.and(v, m1), 1));
  v = v128.or(v128.and(i64x2.shr_u(v, 2), m2), i64x2.shl(v128.and(v, m2), 2));
  return v128.or(v128.and(i64x2.shr_u(v, 4), m4), i64x2.shl(v128.and(v, m4), 4));
}

/** Full 64-bit bit reversal of both lanes. */
@inline function rev64x2(v: v128): v128 {
  return bswap64x2(bitrevBytes(v));
}

/** Low 64 bits of the carry-less product of x and h, where h is given as its 4 masked parts at hp. */
@inline function bmul(x: u64, hp: usize): u64 {
  const x0 = x & M0;
  const x1 = x & M1;
  const x2 = x & M2;
  const x3 = x & M3;
  const h0 = load<u64>(hp);
  const h1 = load<u64>(hp, 8);
  const h2 = load<u64>(hp, 16);
  const h3 = load<u64>(hp, 24);
  const z0 = (x0 * h0) ^ (x1 * h3) ^ (x2 * h2) ^ (x3 * h1);
  const z1 = (x0 * h1) ^ (x1 * h0) ^ (x2 * h3) ^ (x3 * h2);
  const z2 = (x0 * h2) ^ (x1 * h1) ^ (x2 * h0) ^ (x3 * h3);
  const z3 = (x0 * h3) ^ (x1 * h2) ^ (x2 * h1) ^ (x3 * h0);
  return (z0 & M0) | (z1 & M1) | (z2 & M2) | (z3 & M3);
}

@inline function storeParts(p: usize, v: u64): void {
  store<u64>(p, v & M0);
  store<u64>(p, v & M1, 8);
  store<u64>(p, v & M2, 16);
  store<u64>(p, v & M3, 24);
}

/** Writes the multiply-ready parts of the element (hi, lo) at hp (POWER_BYTES). */
function storePower(hp: usize, hi: u64, lo: u64): void {
  const r = rev64x2(i64x2.replace_lane(i64x2.splat(hi), 1, lo));
  const hir = <u64>i64x2.extract_lane(r, 0);
  const lor = <u64>i64x2.extract_lane(r, 1);
  storeParts(hp, lo); // h0 (low word)
  storeParts(hp + 32, hi); // h1 (high word)
  storeParts(hp + 64, lo ^ hi); // h2 (Karatsuba middle)
  storeParts(hp + 96, lor);
  storeParts(hp + 128, hir);
  storeParts(hp + 160, lor ^ hir);
}

/**
 * Recombines summed partial products and reduces: lo/hi/mid are the sums of bmul over the direct
 * operands, loR/hiR/midR over the bit-reversed ones. Returns the reduced element as big-endian lanes.
 */
@inline function reduce(lo: u64, hi: u64, mid: u64, loR: u64, hiR: u64, midR: u64): v128 {
  const r = rev64x2(i64x2.replace_lane(i64x2.splat(loR), 1, hiR));
  const loH = <u64>i64x2.extract_lane(r, 0) >> 1;
  const hiH = <u64>i64x2.extract_lane(r, 1) >> 1;
  const midH = (<u64>i64x2.extract_lane(rev64x2(i64x2.splat(midR)), 0) >> 1) ^ loH ^ hiH;
  const midL = mid ^ lo ^ hi;
  // The 255-bit product z3:z2:z1:z0, shifted left by one (bit-reflected operands).
  let z0 = lo;
  let z1 = loH ^ midL;
  let z2 = hi ^ midH;
  let z3 = hiH;
  z3 = (z3 << 1) | (z2 >> 63);
  z2 = (z2 << 1) | (z1 >> 63);
  z1 = (z1 << 1) | (z0 >> 63);
  z0 <<= 1;
  // Fold the high-degree half (z1:z0) with x^128 = x^7 + x^2 + x + 1.
  z2 ^= z0 ^ (z0 >> 1) ^ (z0 >> 2) ^ (z0 >> 7);
  z1 ^= (z0 << 63) ^ (z0 << 62) ^ (z0 << 57);
  z3 ^= z1 ^ (z1 >> 1) ^ (z1 >> 2) ^ (z1 >> 7);
  z2 ^= (z1 << 63) ^ (z1 << 62) ^ (z1 << 57);
  return i64x2.replace_lane(i64x2.splat(z3), 1, z2);
}

/** (hi, lo) as big-endian lanes times the power whose parts are at hp. */
function mulPower(be: v128, hp: usize): v128 {
  const hi = <u64>i64x2.extract_lane(be, 0);
  const lo = <u64>i64x2.extract_lane(be, 1);
  const r = rev64x2(be);
  const hir = <u64>i64x2.extract_lane(r, 0);
  const lor = <u64>i64x2.extract_lane(r, 1);
  return reduce(
    bmul(lo, hp),
    bmul(hi, hp + 32),
    bmul(lo ^ hi, hp + 64),
    bmul(lor, hp + 96),
    bmul(hir, hp + 128),
    bmul(lor ^ hir, hp + 160),
  );
}

/** Precomputes H^1..H^4 at hk (GHASH_KEY_BYTES) from H = E(K, 0^128) in memory byte order. */
export function ghash_init(hk: usize, h: v128): void {
  const h1 = bswap64x2(h);
  storePower(hk, i64x2.extract_lane(h1, 0), i64x2.extract_lane(h1, 1));
  let p = h1;
  for (let i: usize = 1; i < 4; i++) {
    p = mulPower(p, hk);
    storePower(hk + i * POWER_BYTES, i64x2.extract_lane(p, 0), i64x2.extract_lane(p, 1));
  }
}

/** Y = (Y ^ block) * H for one block (memory byte order in and out). */
export function ghash_block(hk: usize, y: v128, block: v128): v128 {
  return bswap64x2(mulPower(bswap64x2(v128.xor(y, block)), hk));
}

/**
 * Absorbs `len` bytes at `p` into the state `y` (memory byte order); a final partial block is
 * zero-padded, as GCM pads AAD and ciphertext. Returns the new state.
 */
export function ghash_update(hk: usize, y: v128, p: usize, len: usize): v128 {
  const h4 = hk + 3 * POWER_BYTES;
  const h3 = hk + 2 * POWER_BYTES;
  const h2 = hk + POWER_BYTES;
  while (len >= 64) {
    let lo: u64 = 0, hi: u64 = 0, mid: u64 = 0, loR: u64 = 0, hiR: u64 = 0, midR: u64 = 0;
    for (let j: usize = 0; j < 4; j++) {
      let raw = v128.load(p + (j << 4));
      if (j == 0) raw = v128.xor(raw, y);
      const hp = j == 0 ? h4 : j == 1 ? h3 : j == 2 ? h2 : hk;
      const be = bswap64x2(raw);
      const r = bitrevBytes(raw);
      const bhi = <u64>i64x2.extract_lane(be, 0);
      const blo = <u64>i64x2.extract_lane(be, 1);
      const bhiR = <u64>i64x2.extract_lane(r, 0);
      const bloR = <u64>i64x2.extract_lane(r, 1);
      lo ^= bmul(blo, hp);
      hi ^= bmul(bhi, hp + 32);
      mid ^= bmul(blo ^ bhi, hp + 64);
      loR ^= bmul(bloR, hp + 96);
      hiR ^= bmul(bhiR, hp + 128);
      midR ^= bmul(bloR ^ bhiR, hp + 160);
    }
    y = bswap64x2(reduce(lo, hi, mid, loR, hiR, midR));
    p += 64;
    len -= 64;
  }
  while (len >= 16) {
    y = ghash_block(hk, y, v128.load(p));
    p += 16;
    len -= 16;
  }
  if (len > 0) {
    let w0: u64 = 0, w1: u64 = 0;
    for (let i: usize = 0; i < len; i++) {
      const b = <u64>load<u8>(p + i);
      if (i < 8) w0 |= b << (<u64>i << 3);
      else w1 |= b << (<u64>(i - 8) << 3);
    }
    y = ghash_block(hk, y, i64x2.replace_lane(i64x2.splat(w0), 1, w1));
  }
  return y;
}

/** Absorbs GCM's final block: len(A) and len(C) in bits, each a big-endian u64. */
export function ghash_lengths(hk: usize, y: v128, aadLen: usize, textLen: usize): v128 {
  const be = i64x2.replace_lane(i64x2.splat(<u64>aadLen << 3), 1, <u64>textLen << 3);
  return ghash_block(hk, y, bswap64x2(be));
}
