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
// Groups of up to 16 messages use the second technique at the end of this file (4-bit tables looked
// up with i8x16.swizzle, one message per lane), about three times faster per byte. A long
// message hashed alone uses it too, with lanes = its blocks 16 apart and tables for H^16
// (`ghash_power16`; gcm.ts combines the 16 lanes with the scalar path at the end).
//
// Values: a GHASH state or block travels as a v128 in memory byte order. Internally a block is two
// big-endian u64 words, hi = bytes 0..7 and lo = bytes 8..15, in GHASH's bit-reflected convention.

/** Bytes of the GHASH key (H^1..H^4, 192 bytes each). */
/**
 * i8x16.swizzle, or i8x16.relaxed_swizzle in the relaxed-SIMD build: every index used here is
 * 0..15, where both give the same result; the relaxed form is a bare pshufb/tbl (plain swizzle
 * adds a saturating add per use on x86 to zero out-of-range lanes).
 */
@inline function swz(a: v128, s: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i8x16.relaxed_swizzle(a, s);
  return i8x16.swizzle(a, s);
}

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

/**
 * Writes the multiply-ready parts of H^16 (192 bytes) at `out`, from the key at hk and H = E(K, 0^128)
 * in memory byte order: the base of the 16-lane tables that hash one long message 16 blocks apart.
 */
export function ghash_power16(hk: usize, h: v128, out: usize): void {
  let p = bswap64x2(h);
  for (let i = 1; i < 16; i++) p = mulPower(p, hk);
  storePower(out, i64x2.extract_lane(p, 0), i64x2.extract_lane(p, 1));
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
  return ghash_block(hk, y, ghash_length_block(aadLen, textLen));
}

// ---- 16 messages at once: 4-bit tables through i8x16.swizzle ----------------------------------
// Lane j of every vector belongs to message j, and the 16 states are kept transposed: vector b
// holds byte b (memory order) of all 16 states. Multiplication by H is GF(2)-linear, so
// Y*H = XOR over the 32 nibble positions t of T_t[nibble t of Y], where T_t[n] is n placed at
// nibble t, times H: 32 x 16 entries of 16 bytes per key, stored as byte planes (plane (t, b),
// lane n = byte b of T_t[n]). One i8x16.swizzle looks byte b of T_t up for all 16 lanes at once.
// The index of a swizzle is secret here, which is still constant-time: swizzle lowers to a single
// vector permute (V8 emits paddusb + pshufb on x86, tbl on ARM; the relaxed-SIMD build a bare
// pshufb) whose timing does not depend on the index values, and the planes are read at fixed
// addresses. About 2 cycles per byte against 6 for the scalar path.

/** Bytes of the 16-lane tables (32 nibble positions x 16 byte planes x 16 entries). */
export const GHASH16_TABLE_BYTES: i32 = 8192;
/** Bytes of scratch `ghash16_absorb` needs. */
export const GHASH16_TMP_BYTES: i32 = 768;

/** Builds the 16-lane tables at `tables` from the scalar key at hk; tmp: 96 bytes, zeroed after. */
export function ghash16_init(tables: usize, hk: usize, tmp: usize): void {
  const zero = i64x2.splat(0);
  for (let t: usize = 0; t < 32; t++) {
    const k = t >> 1;
    const shift = <u32>(t & 1) << 2;
    for (let s: usize = 0; s < 4; s++) {
      v128.store(tmp, zero);
      const bit: u32 = 1 << (<u32>s + shift);
      store<u8>(tmp + k, <u8>bit);
      v128.store(tmp + 16 + (s << 4), ghash_block(hk, zero, v128.load(tmp)));
    }
    for (let n: usize = 0; n < 16; n++) {
      let e = zero;
      for (let s: usize = 0; s < 4; s++) {
        if ((n >> s) & 1) e = v128.xor(e, v128.load(tmp + 16 + (s << 4)));
      }
      v128.store(tmp + 80, e);
      for (let b: usize = 0; b < 16; b++) store<u8>(tables + (t << 8) + (b << 4) + n, load<u8>(tmp + 80 + b));
    }
  }
  memory.fill(tmp, 0, 96);
}

/**
 * y = (y ^ x) * H for 16 messages at once: x holds 16 blocks as rows (row j = message j), y the
 * transposed state (see above). tmp: GHASH16_TMP_BYTES of scratch.
 */
export function ghash16_absorb(tables: usize, y: usize, x: usize, tmp: usize): void {
  ghash16_transpose(x, tmp);
  absorbTransposed(tables, y, tmp);
}

/**
 * As ghash16_absorb, but row j (message j's block) is read at the address in the u32 at rows + 4j,
 * so blocks are taken where they lie instead of being copied together first.
 */
export function ghash16_absorb_rows(tables: usize, y: usize, rows: usize, tmp: usize): void {
  transposeCore(
    v128.load(load<u32>(rows, 0)),
    v128.load(load<u32>(rows, 32)),
    v128.load(load<u32>(rows, 16)),
    v128.load(load<u32>(rows, 48)),
    v128.load(load<u32>(rows, 8)),
    v128.load(load<u32>(rows, 40)),
    v128.load(load<u32>(rows, 24)),
    v128.load(load<u32>(rows, 56)),
    v128.load(load<u32>(rows, 4)),
    v128.load(load<u32>(rows, 36)),
    v128.load(load<u32>(rows, 20)),
    v128.load(load<u32>(rows, 52)),
    v128.load(load<u32>(rows, 12)),
    v128.load(load<u32>(rows, 44)),
    v128.load(load<u32>(rows, 28)),
    v128.load(load<u32>(rows, 60)),
    tmp,
  );
  absorbTransposed(tables, y, tmp);
}

/** The table lookups of ghash16_absorb, the 16 input blocks already transposed at tmp. */
@inline function absorbTransposed(tables: usize, y: usize, tmp: usize): void {
  const m = i8x16.splat(0x0f);
  for (let k: usize = 0; k < 16; k++) {
    const v = v128.xor(v128.load(y + (k << 4)), v128.load(tmp + (k << 4)));
    v128.store(tmp + 256 + (k << 5), v128.and(v, m));
    v128.store(tmp + 272 + (k << 5), v128.and(i16x8.shr_u(v, 4), m));
  }
  // Two passes of 8 output bytes each: 16 accumulators plus the index and a table register do
  // not fit the 16 vector registers of x86-64, and the spills cost more than reloading the indices.
  absorbHalf(tables, y, tmp + 256);
  absorbHalf(tables + 128, y + 128, tmp + 256);
}

/** Output bytes 8h..8h+7 of the 16 lanes (tables and y already offset by 128h); nib: 32 index vectors. */
@inline function absorbHalf(tables: usize, y: usize, nib: usize): void {
  let r0 = i64x2.splat(0), r1 = r0, r2 = r0, r3 = r0, r4 = r0, r5 = r0, r6 = r0, r7 = r0;
  // Four nibble positions per iteration: the loop's own instructions (counter, addresses, V8's
  // stack check) cost ~15% of the lookups when taken once per position.
  for (let t: usize = 0; t < 32; t += 4) {
    const tp = tables + (t << 8);
    const n0 = v128.load(nib + (t << 4), 0);
    r0 = v128.xor(r0, swz(v128.load(tp, 0), n0));
    r1 = v128.xor(r1, swz(v128.load(tp, 16), n0));
    r2 = v128.xor(r2, swz(v128.load(tp, 32), n0));
    r3 = v128.xor(r3, swz(v128.load(tp, 48), n0));
    r4 = v128.xor(r4, swz(v128.load(tp, 64), n0));
    r5 = v128.xor(r5, swz(v128.load(tp, 80), n0));
    r6 = v128.xor(r6, swz(v128.load(tp, 96), n0));
    r7 = v128.xor(r7, swz(v128.load(tp, 112), n0));
    const n1 = v128.load(nib + (t << 4), 16);
    r0 = v128.xor(r0, swz(v128.load(tp, 256), n1));
    r1 = v128.xor(r1, swz(v128.load(tp, 272), n1));
    r2 = v128.xor(r2, swz(v128.load(tp, 288), n1));
    r3 = v128.xor(r3, swz(v128.load(tp, 304), n1));
    r4 = v128.xor(r4, swz(v128.load(tp, 320), n1));
    r5 = v128.xor(r5, swz(v128.load(tp, 336), n1));
    r6 = v128.xor(r6, swz(v128.load(tp, 352), n1));
    r7 = v128.xor(r7, swz(v128.load(tp, 368), n1));
    const n2 = v128.load(nib + (t << 4), 32);
    r0 = v128.xor(r0, swz(v128.load(tp, 512), n2));
    r1 = v128.xor(r1, swz(v128.load(tp, 528), n2));
    r2 = v128.xor(r2, swz(v128.load(tp, 544), n2));
    r3 = v128.xor(r3, swz(v128.load(tp, 560), n2));
    r4 = v128.xor(r4, swz(v128.load(tp, 576), n2));
    r5 = v128.xor(r5, swz(v128.load(tp, 592), n2));
    r6 = v128.xor(r6, swz(v128.load(tp, 608), n2));
    r7 = v128.xor(r7, swz(v128.load(tp, 624), n2));
    const n3 = v128.load(nib + (t << 4), 48);
    r0 = v128.xor(r0, swz(v128.load(tp, 768), n3));
    r1 = v128.xor(r1, swz(v128.load(tp, 784), n3));
    r2 = v128.xor(r2, swz(v128.load(tp, 800), n3));
    r3 = v128.xor(r3, swz(v128.load(tp, 816), n3));
    r4 = v128.xor(r4, swz(v128.load(tp, 832), n3));
    r5 = v128.xor(r5, swz(v128.load(tp, 848), n3));
    r6 = v128.xor(r6, swz(v128.load(tp, 864), n3));
    r7 = v128.xor(r7, swz(v128.load(tp, 880), n3));
  }
  v128.store(y, r0, 0);
  v128.store(y, r1, 16);
  v128.store(y, r2, 32);
  v128.store(y, r3, 48);
  v128.store(y, r4, 64);
  v128.store(y, r5, 80);
  v128.store(y, r6, 96);
  v128.store(y, r7, 112);
}

/** 16x16 byte transpose: row j at src + 16j -> row k at dst + 16k holds byte k of every source row. */
// The transpose is its own inverse: it also turns the state back into 16 rows.
export function ghash16_transpose(src: usize, dst: usize): void {
  transposeCore(
    v128.load(src, 0),
    v128.load(src, 128),
    v128.load(src, 64),
    v128.load(src, 192),
    v128.load(src, 32),
    v128.load(src, 160),
    v128.load(src, 96),
    v128.load(src, 224),
    v128.load(src, 16),
    v128.load(src, 144),
    v128.load(src, 80),
    v128.load(src, 208),
    v128.load(src, 48),
    v128.load(src, 176),
    v128.load(src, 112),
    v128.load(src, 240),
    dst,
  );
}

/** The transpose, given rows 0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15 as v0..v15. */
@inline function transposeCore(
  v0: v128,
  v1: v128,
  v2: v128,
  v3: v128,
  v4: v128,
  v5: v128,
  v6: v128,
  v7: v128,
  v8: v128,
  v9: v128,
  v10: v128,
  v11: v128,
  v12: v128,
  v13: v128,
  v14: v128,
  v15: v128,
  dst: usize,
): void {
  const s0_0 = i8x16.shuffle(v0, v8, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const s0_1 = i8x16.shuffle(v0, v8, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const s0_2 = i8x16.shuffle(v1, v9, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const s0_3 = i8x16.shuffle(v1, v9, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const s0_4 = i8x16.shuffle(v2, v10, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const s0_5 = i8x16.shuffle(v2, v10, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const s0_6 = i8x16.shuffle(v3, v11, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const s0_7 = i8x16.shuffle(v3, v11, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const s0_8 = i8x16.shuffle(v4, v12, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const s0_9 = i8x16.shuffle(v4, v12, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const s0_10 = i8x16.shuffle(v5, v13, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const s0_11 = i8x16.shuffle(v5, v13, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const s0_12 = i8x16.shuffle(v6, v14, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const s0_13 = i8x16.shuffle(v6, v14, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const s0_14 = i8x16.shuffle(v7, v15, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const s0_15 = i8x16.shuffle(v7, v15, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  v0 = s0_0;
  v1 = s0_1;
  v2 = s0_2;
  v3 = s0_3;
  v4 = s0_4;
  v5 = s0_5;
  v6 = s0_6;
  v7 = s0_7;
  v8 = s0_8;
  v9 = s0_9;
  v10 = s0_10;
  v11 = s0_11;
  v12 = s0_12;
  v13 = s0_13;
  v14 = s0_14;
  v15 = s0_15;
  const s1_0 = i8x16.shuffle(v0, v8, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
  const s1_1 = i8x16.shuffle(v0, v8, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
  const s1_2 = i8x16.shuffle(v1, v9, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
  const s1_3 = i8x16.shuffle(v1, v9, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
  const s1_4 = i8x16.shuffle(v2, v10, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
  const s1_5 = i8x16.shuffle(v2, v10, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
  const s1_6 = i8x16.shuffle(v3, v11, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
  const s1_7 = i8x16.shuffle(v3, v11, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
  const s1_8 = i8x16.shuffle(v4, v12, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
  const s1_9 = i8x16.shuffle(v4, v12, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
  const s1_10 = i8x16.shuffle(v5, v13, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
  const s1_11 = i8x16.shuffle(v5, v13, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
  const s1_12 = i8x16.shuffle(v6, v14, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
  const s1_13 = i8x16.shuffle(v6, v14, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
  const s1_14 = i8x16.shuffle(v7, v15, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
  const s1_15 = i8x16.shuffle(v7, v15, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
  v0 = s1_0;
  v1 = s1_1;
  v2 = s1_2;
  v3 = s1_3;
  v4 = s1_4;
  v5 = s1_5;
  v6 = s1_6;
  v7 = s1_7;
  v8 = s1_8;
  v9 = s1_9;
  v10 = s1_10;
  v11 = s1_11;
  v12 = s1_12;
  v13 = s1_13;
  v14 = s1_14;
  v15 = s1_15;
  const s2_0 = i8x16.shuffle(v0, v8, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const s2_1 = i8x16.shuffle(v0, v8, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  const s2_2 = i8x16.shuffle(v1, v9, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const s2_3 = i8x16.shuffle(v1, v9, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  const s2_4 = i8x16.shuffle(v2, v10, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const s2_5 = i8x16.shuffle(v2, v10, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  const s2_6 = i8x16.shuffle(v3, v11, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const s2_7 = i8x16.shuffle(v3, v11, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  const s2_8 = i8x16.shuffle(v4, v12, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const s2_9 = i8x16.shuffle(v4, v12, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  const s2_10 = i8x16.shuffle(v5, v13, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const s2_11 = i8x16.shuffle(v5, v13, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  const s2_12 = i8x16.shuffle(v6, v14, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const s2_13 = i8x16.shuffle(v6, v14, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  const s2_14 = i8x16.shuffle(v7, v15, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const s2_15 = i8x16.shuffle(v7, v15, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  v0 = s2_0;
  v1 = s2_1;
  v2 = s2_2;
  v3 = s2_3;
  v4 = s2_4;
  v5 = s2_5;
  v6 = s2_6;
  v7 = s2_7;
  v8 = s2_8;
  v9 = s2_9;
  v10 = s2_10;
  v11 = s2_11;
  v12 = s2_12;
  v13 = s2_13;
  v14 = s2_14;
  v15 = s2_15;
  const s3_0 = i8x16.shuffle(v0, v8, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  const s3_1 = i8x16.shuffle(v0, v8, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  const s3_2 = i8x16.shuffle(v1, v9, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  const s3_3 = i8x16.shuffle(v1, v9, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  const s3_4 = i8x16.shuffle(v2, v10, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  const s3_5 = i8x16.shuffle(v2, v10, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  const s3_6 = i8x16.shuffle(v3, v11, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  const s3_7 = i8x16.shuffle(v3, v11, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  const s3_8 = i8x16.shuffle(v4, v12, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  const s3_9 = i8x16.shuffle(v4, v12, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  const s3_10 = i8x16.shuffle(v5, v13, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  const s3_11 = i8x16.shuffle(v5, v13, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  const s3_12 = i8x16.shuffle(v6, v14, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  const s3_13 = i8x16.shuffle(v6, v14, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  const s3_14 = i8x16.shuffle(v7, v15, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  const s3_15 = i8x16.shuffle(v7, v15, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  v0 = s3_0;
  v1 = s3_1;
  v2 = s3_2;
  v3 = s3_3;
  v4 = s3_4;
  v5 = s3_5;
  v6 = s3_6;
  v7 = s3_7;
  v8 = s3_8;
  v9 = s3_9;
  v10 = s3_10;
  v11 = s3_11;
  v12 = s3_12;
  v13 = s3_13;
  v14 = s3_14;
  v15 = s3_15;
  v128.store(dst, v0, 0);
  v128.store(dst, v1, 16);
  v128.store(dst, v2, 32);
  v128.store(dst, v3, 48);
  v128.store(dst, v4, 64);
  v128.store(dst, v5, 80);
  v128.store(dst, v6, 96);
  v128.store(dst, v7, 112);
  v128.store(dst, v8, 128);
  v128.store(dst, v9, 144);
  v128.store(dst, v10, 160);
  v128.store(dst, v11, 176);
  v128.store(dst, v12, 192);
  v128.store(dst, v13, 208);
  v128.store(dst, v14, 224);
  v128.store(dst, v15, 240);
}

/** GCM's final block in memory order: len(A) and len(C) in bits, each a big-endian u64. */
export function ghash_length_block(aadLen: usize, textLen: usize): v128 {
  return bswap64x2(i64x2.replace_lane(i64x2.splat(<u64>aadLen << 3), 1, <u64>textLen << 3));
}
