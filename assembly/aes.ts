// AES-128 / AES-256 block encryption, bitsliced over 8 blocks in v128 lanes (constant-time).
//
// Technique: Käsper-Schwabe style bitslicing on WebAssembly SIMD. Eight 16-byte blocks are
// transposed into eight v128 "bit planes": plane i holds bit i of every state byte; within a plane,
// byte p is state byte p (column-major, as FIPS-197 lays the block out) and bit j of that byte
// belongs to block j. SubBytes is then the Boyar-Peralta 113-gate circuit (only AND and XOR on whole
// planes; their smallest circuit, depth 28, rather than their 128-gate depth-16 one: the round
// loop is bound by instruction count, not latency), ShiftRows and the MixColumns byte rotations
// are byte permutations by fixed masks
// (`i8x16.swizzle` with public indices), and AddRoundKey XORs pre-sliced round keys. No
// instruction's address, index or branch depends on key or data: the only memory reads are round
// keys and masks at fixed offsets, and every loop bound is public (the number of rounds, the
// lengths). That is why it is constant-time. The key schedule's SubWord
// uses `sbox_ct` below (exponentiation in GF(2^8) with masked arithmetic), also table- and
// branch-free.
//
// WASM has no AES instructions, so speed comes from width: one call encrypts 8 blocks (CTR mode
// hands it 8 counter blocks at a time), and the 4 NOT gates of the S-box are folded into the round
// keys (0x63 survives ShiftRows and MixColumns unchanged, so XORing it into keys 1..Nr is exact).
// Counter mode can start at round 2 from a precomputed sliced state (`aes_ctr8_from1`, used by
// gcm.ts): the precomputation is the same circuit, and the table it fills is read at an address
// given by the counter, which is public.
//
// Round keys (written by `aes_expand`): (Nr+1) x 8 planes x 16 bytes at `rk`, plane i of round r at
// rk + r*128 + i*16; each is the round key (bytes permuted by Pi_r^-1, see below) replicated to all
// 8 blocks, so byte p is 0x00 or 0xff.

/** Bytes of sliced round keys for AES-256 (15 round keys x 128 bytes). */
/**
 * i8x16.swizzle, or i8x16.relaxed_swizzle in the relaxed-SIMD build: every index used here is
 * 0..15, where both give the same result; the relaxed form is a bare pshufb/tbl (plain swizzle
 * adds a saturating add per use on x86 to zero out-of-range lanes).
 */
@inline function swz(a: v128, s: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i8x16.relaxed_swizzle(a, s);
  return i8x16.swizzle(a, s);
}

export const AES_RK_BYTES: i32 = 1920;

@inline function X(a: v128, b: v128): v128 {
  return v128.xor(a, b);
}
@inline function N(a: v128, b: v128): v128 {
  return v128.and(a, b);
}
// ShiftRows is never applied to the state. Instead the state is kept in a byte order that drifts
// by one ShiftRows per round (A_r = Pi_r(X_r), Pi_r = ShiftRows^r, period 4), which MixColumns
// absorbs: its column rotations conjugated by Pi_r are still single byte permutations (C1, C2
// below, one pair per r mod 4), round key r is stored pre-permuted by Pi_r^-1, and one final
// permutation (Pi_Nr = ShiftRows^2 for both 10 and 14 rounds) restores the byte order. This saves
// the 8 ShiftRows permutations of every round (the fixslicing idea of Adomnicai and Peyrin).
// The masks live in read-only static data and are loaded into registers: V8 rebuilds a constant
// shuffle mask with four integer instructions at each use, a swizzle by a register costs two.
/** Per r mod 4: C1 (rotate columns by one row) then C2 (by two rows), conjugated by Pi_r. */
const MC_MASKS = memory.data<u8>([
  1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
  5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12, 1, 2, 3, 0, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7, 4, 5,
  9, 10, 11, 8, 13, 14, 15, 12, 1, 2, 3, 0, 5, 6, 7, 4, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
  13, 14, 15, 12, 1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7, 4, 5,
]);
/** Per r mod 4: Pi_r^-1, applied to round key r at expansion. */
const KEY_MASKS = memory.data<u8>([
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
  0, 13, 10, 7, 4, 1, 14, 11, 8, 5, 2, 15, 12, 9, 6, 3,
  0, 9, 2, 11, 4, 13, 6, 15, 8, 1, 10, 3, 12, 5, 14, 7,
  0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, 1, 6, 11,
]);
/** Pi_Nr = ShiftRows^2 (Nr = 10 or 14), applied to the state after the last round. */
const FINAL_MASK = memory.data<u8>([0, 9, 2, 11, 4, 13, 6, 15, 8, 1, 10, 3, 12, 5, 14, 7]);

/**
 * Encrypts the 8 blocks b0..b7 with the sliced round keys at `rk` (`nr` rounds). The keystream of
 * blocks `first`, first+1, ... is XORed into `len` bytes at `p` (len <= (8-first)*16; a partial last
 * block touches only its bytes). Returns the encryption of b0 (GCM's E(K, J0) when first = 1).
 */
export function aes_encrypt8_xor(
  rk: usize,
  nr: i32,
  b0: v128,
  b1: v128,
  b2: v128,
  b3: v128,
  b4: v128,
  b5: v128,
  b6: v128,
  b7: v128,
  p: usize,
  len: usize,
  first: i32,
): v128 {
  return aesCore(rk, nr, b0, b1, b2, b3, b4, b5, b6, b7, p, len, first, 0, 0, MODE_FULL);
}

/**
 * As aes_encrypt8_xor, but starts from a state already through round 1, given in sliced form as
 * the XOR of the 8 planes at `sp` and the 8 planes at `wp` (see `aes_round1_sliced`): rounds 2..nr,
 * then the same output. This is the counter-mode shortcut (Bernstein and Schwabe, "New AES software
 * speed records"): blocks that differ only in their last byte share all of round 1 but one column,
 * and that column depends only on the key and the (public) last byte, so it is precomputed per key.
 */
export function aes_ctr8_from1(rk: usize, nr: i32, sp: usize, wp: usize, p: usize, len: usize, first: i32): v128 {
  const z = i64x2.splat(0);
  return aesCore(rk, nr, z, z, z, z, z, z, z, z, p, len, first, sp, wp, MODE_FROM1);
}

/** Runs round 0 and round 1 on b0..b7 and stores the 8 sliced state planes (128 bytes) at `out`. */
export function aes_round1_sliced(
  rk: usize,
  b0: v128,
  b1: v128,
  b2: v128,
  b3: v128,
  b4: v128,
  b5: v128,
  b6: v128,
  b7: v128,
  out: usize,
): void {
  aesCore(rk, 10, b0, b1, b2, b3, b4, b5, b6, b7, 0, 0, 0, out, 0, MODE_ROUND1);
}

const MODE_FULL = 0; // transpose in, rounds 0..nr, transpose out, XOR into the data
const MODE_FROM1 = 1; // state after round 1 = planes at sp ^ planes at wp; rounds 2..nr, out as FULL
const MODE_ROUND1 = 2; // transpose in, rounds 0 and 1, store the planes at sp

// One body for the three modes; `mode` is a constant at every call site, so each entry point is
// compiled without the others' branches.
@inline function aesCore(
  rk: usize,
  nr: i32,
  b0: v128,
  b1: v128,
  b2: v128,
  b3: v128,
  b4: v128,
  b5: v128,
  b6: v128,
  b7: v128,
  p: usize,
  len: usize,
  first: i32,
  sp: usize,
  wp: usize,
  mode: i32,
): v128 {
  const m1 = i8x16.splat(0x55);
  const m2 = i8x16.splat(0x33);
  const m4 = i8x16.splat(0x0f);
  let t: v128;
  let s0: v128, s1: v128, s2: v128, s3: v128, s4: v128, s5: v128, s6: v128, s7: v128;
  let r0 = 1;
  if (mode == MODE_FROM1) {
    s0 = X(v128.load(sp, 0), v128.load(wp, 0));
    s1 = X(v128.load(sp, 16), v128.load(wp, 16));
    s2 = X(v128.load(sp, 32), v128.load(wp, 32));
    s3 = X(v128.load(sp, 48), v128.load(wp, 48));
    s4 = X(v128.load(sp, 64), v128.load(wp, 64));
    s5 = X(v128.load(sp, 80), v128.load(wp, 80));
    s6 = X(v128.load(sp, 96), v128.load(wp, 96));
    s7 = X(v128.load(sp, 112), v128.load(wp, 112));
    r0 = 2;
  } else {
    // Transpose 8 blocks into 8 bit planes: three layers of swap-move over 8x8 bit matrices.
    t = N(X(i64x2.shr_u(b1, 1), b0), m1); b0 = X(b0, t); b1 = X(b1, i64x2.shl(t, 1));
    t = N(X(i64x2.shr_u(b3, 1), b2), m1); b2 = X(b2, t); b3 = X(b3, i64x2.shl(t, 1));
    t = N(X(i64x2.shr_u(b5, 1), b4), m1); b4 = X(b4, t); b5 = X(b5, i64x2.shl(t, 1));
    t = N(X(i64x2.shr_u(b7, 1), b6), m1); b6 = X(b6, t); b7 = X(b7, i64x2.shl(t, 1));
    t = N(X(i64x2.shr_u(b2, 2), b0), m2); b0 = X(b0, t); b2 = X(b2, i64x2.shl(t, 2));
    t = N(X(i64x2.shr_u(b3, 2), b1), m2); b1 = X(b1, t); b3 = X(b3, i64x2.shl(t, 2));
    t = N(X(i64x2.shr_u(b6, 2), b4), m2); b4 = X(b4, t); b6 = X(b6, i64x2.shl(t, 2));
    t = N(X(i64x2.shr_u(b7, 2), b5), m2); b5 = X(b5, t); b7 = X(b7, i64x2.shl(t, 2));
    t = N(X(i64x2.shr_u(b4, 4), b0), m4); b0 = X(b0, t); b4 = X(b4, i64x2.shl(t, 4));
    t = N(X(i64x2.shr_u(b5, 4), b1), m4); b1 = X(b1, t); b5 = X(b5, i64x2.shl(t, 4));
    t = N(X(i64x2.shr_u(b6, 4), b2), m4); b2 = X(b2, t); b6 = X(b6, i64x2.shl(t, 4));
    t = N(X(i64x2.shr_u(b7, 4), b3), m4); b3 = X(b3, t); b7 = X(b7, i64x2.shl(t, 4));

    // Each layer maps (register bit k, bit-position bit k) to their complements, so register b_j now
    // holds bit 7-j of every byte. From here s_i = plane of bit i. Round 0: AddRoundKey.
    s0 = X(b7, v128.load(rk, 0));
    s1 = X(b6, v128.load(rk, 16));
    s2 = X(b5, v128.load(rk, 32));
    s3 = X(b4, v128.load(rk, 48));
    s4 = X(b3, v128.load(rk, 64));
    s5 = X(b2, v128.load(rk, 80));
    s6 = X(b1, v128.load(rk, 96));
    s7 = X(b0, v128.load(rk, 112));
  }

  for (let r = r0; ; r++) {
    const k = rk + (<usize>r << 7);
    // SubBytes: the Boyar-Peralta 113-gate circuit ("A new combinational logic minimization
    // technique with applications to cryptology", 2009): 23 + 30 + 30 XORs, 32 ANDs.
    // U0 = bit 7 ... U7 = bit 0; S0 = bit 7 ... S7 = bit 0. The four output NOTs (S1, S2, S6, S7)
    // are folded into the round keys.
    const U0 = s7, U1 = s6, U2 = s5, U3 = s4, U4 = s3, U5 = s2, U6 = s1, U7 = s0;
    // Top linear layer (23 XORs).
    const Y14 = X(U3, U5);
    const Y13 = X(U0, U6);
    const Y9 = X(U0, U3);
    const Y8 = X(U0, U5);
    const P0 = X(U1, U2);
    const Y1 = X(P0, U7);
    const Y4 = X(Y1, U3);
    const Y12 = X(Y13, Y14);
    const Y2 = X(Y1, U0);
    const Y5 = X(Y1, U6);
    const Y3 = X(Y5, Y8);
    const P1 = X(U4, Y12);
    const Y15 = X(P1, U5);
    const Y20 = X(P1, U1);
    const Y6 = X(Y15, U7);
    const Y10 = X(Y15, P0);
    const Y11 = X(Y20, Y9);
    const Y7 = X(U7, Y11);
    const Y17 = X(Y10, Y11);
    const Y19 = X(Y10, Y8);
    const Y16 = X(P0, Y11);
    const Y21 = X(Y13, Y16);
    const Y18 = X(U0, Y16);

    // Nonlinear middle: inversion in GF(2^4)^2 (32 ANDs with the products below).
    const N2 = N(Y12, Y15);
    const N3 = N(Y3, Y6);
    const N4 = X(N3, N2);
    const N5 = N(Y4, U7);
    const N6 = X(N5, N2);
    const N7 = N(Y13, Y16);
    const N8 = N(Y5, Y1);
    const N9 = X(N8, N7);
    const N10 = N(Y2, Y7);
    const N11 = X(N10, N7);
    const N12 = N(Y9, Y11);
    const N13 = N(Y14, Y17);
    const N14 = X(N13, N12);
    const N15 = N(Y8, Y10);
    const N16 = X(N15, N12);
    const N17 = X(N4, N14);
    const N18 = X(N6, N16);
    const N19 = X(N9, N14);
    const N20 = X(N11, N16);
    const N21 = X(N17, Y20);
    const N22 = X(N18, Y19);
    const N23 = X(N19, Y21);
    const N24 = X(N20, Y18);
    const N25 = X(N21, N22);
    const N26 = N(N21, N23);
    const N27 = X(N24, N26);
    const N28 = N(N25, N27);
    const N29 = X(N28, N22);
    const N30 = X(N23, N24);
    const N31 = X(N22, N26);
    const N32 = N(N31, N30);
    const N33 = X(N32, N24);
    const N34 = X(N23, N33);
    const N35 = X(N27, N33);
    const N36 = N(N24, N35);
    const N37 = X(N36, N34);
    const N38 = X(N27, N36);
    const N39 = N(N29, N38);
    const N40 = X(N25, N39);
    const N41 = X(N40, N37);
    const N42 = X(N29, N33);
    const N43 = X(N29, N40);
    const N44 = X(N33, N37);
    const N45 = X(N42, N41);
    const Z0 = N(N44, Y15);
    const Z1 = N(N37, Y6);
    const Z2 = N(N33, U7);
    const Z3 = N(N43, Y16);
    const Z4 = N(N40, Y1);
    const Z5 = N(N29, Y7);
    const Z6 = N(N42, Y11);
    const Z7 = N(N45, Y17);
    const Z8 = N(N41, Y10);
    const Z9 = N(N44, Y12);
    const Z10 = N(N37, Y3);
    const Z11 = N(N33, Y4);
    const Z12 = N(N43, Y13);
    const Z13 = N(N40, Y5);
    const Z14 = N(N29, Y2);
    const Z15 = N(N42, Y9);
    const Z16 = N(N45, Y14);
    const Z17 = N(N41, Y8);

    // Bottom linear layer (30 XORs; the 4 NOTs are in the round keys).
    const B46 = X(Z15, Z16);
    const B47 = X(Z10, Z11);
    const B48 = X(Z5, Z13);
    const B49 = X(Z9, Z10);
    const B50 = X(Z2, Z12);
    const B51 = X(Z2, Z5);
    const B52 = X(Z7, Z8);
    const B53 = X(Z0, Z3);
    const B54 = X(Z6, Z7);
    const B55 = X(Z16, Z17);
    const B56 = X(Z12, B48);
    const B57 = X(B50, B53);
    const B58 = X(Z4, B46);
    const B59 = X(Z3, B54);
    const B60 = X(B46, B57);
    const B61 = X(Z14, B57);
    const B62 = X(B52, B58);
    const B63 = X(B49, B58);
    const B64 = X(Z4, B59);
    const B65 = X(B61, B62);
    const B66 = X(Z1, B63);
    const B67 = X(B64, B65);

    const q7 = X(B59, B63); // S0
    const q1 = X(B56, B62); // S6 (NOT folded into keys)
    const q0 = X(B48, B60); // S7 (NOT folded)
    const q4 = X(B53, B66); // S3
    const q3 = X(B51, B66); // S4
    const q2 = X(B47, B65); // S5
    const q6 = X(B64, q4); // S1 (NOT folded)
    const q5 = X(B55, B67); // S2 (NOT folded)

    if (r == nr) {
      s0 = X(q0, v128.load(k, 0));
      s1 = X(q1, v128.load(k, 16));
      s2 = X(q2, v128.load(k, 32));
      s3 = X(q3, v128.load(k, 48));
      s4 = X(q4, v128.load(k, 64));
      s5 = X(q5, v128.load(k, 80));
      s6 = X(q6, v128.load(k, 96));
      s7 = X(q7, v128.load(k, 112));
      break;
    }
    // MixColumns in the drifted byte order: out = 2t ^ a1 ^ C2(t), with a1 = C1(q), t = q ^ a1.
    const mp = MC_MASKS + (<usize>(r & 3) << 5);
    const c1 = v128.load(mp);
    const c2 = v128.load(mp, 16);
    const a10 = swz(q0, c1), a11 = swz(q1, c1), a12 = swz(q2, c1);
    const a13 = swz(q3, c1), a14 = swz(q4, c1), a15 = swz(q5, c1);
    const a16 = swz(q6, c1), a17 = swz(q7, c1);
    const t0 = X(q0, a10), t1 = X(q1, a11), t2 = X(q2, a12), t3 = X(q3, a13);
    const t4 = X(q4, a14), t5 = X(q5, a15), t6 = X(q6, a16), t7 = X(q7, a17);
    // 2t over the planes: bit0 = t7, bit1 = t0^t7, bit2 = t1, bit3 = t2^t7, bit4 = t3^t7, ...
    s0 = X(X(t7, a10), X(swz(t0, c2), v128.load(k, 0)));
    s1 = X(X(X(t0, t7), a11), X(swz(t1, c2), v128.load(k, 16)));
    s2 = X(X(t1, a12), X(swz(t2, c2), v128.load(k, 32)));
    s3 = X(X(X(t2, t7), a13), X(swz(t3, c2), v128.load(k, 48)));
    s4 = X(X(X(t3, t7), a14), X(swz(t4, c2), v128.load(k, 64)));
    s5 = X(X(t4, a15), X(swz(t5, c2), v128.load(k, 80)));
    s6 = X(X(t5, a16), X(swz(t6, c2), v128.load(k, 96)));
    s7 = X(X(t6, a17), X(swz(t7, c2), v128.load(k, 112)));
    if (mode == MODE_ROUND1) {
      v128.store(sp, s0, 0);
      v128.store(sp, s1, 16);
      v128.store(sp, s2, 32);
      v128.store(sp, s3, 48);
      v128.store(sp, s4, 64);
      v128.store(sp, s5, 80);
      v128.store(sp, s6, 96);
      v128.store(sp, s7, 112);
      return s0;
    }
  }
  // Back to the FIPS byte order.
  const fm = v128.load(FINAL_MASK);
  s0 = swz(s0, fm);
  s1 = swz(s1, fm);
  s2 = swz(s2, fm);
  s3 = swz(s3, fm);
  s4 = swz(s4, fm);
  s5 = swz(s5, fm);
  s6 = swz(s6, fm);
  s7 = swz(s7, fm);

  // Transpose back (the swap-move layers in reverse order; each layer is its own inverse).
  // Register b_j must again hold bit 7-j: the inverse takes the planes in reverse order.
  b0 = s7; b1 = s6; b2 = s5; b3 = s4; b4 = s3; b5 = s2; b6 = s1; b7 = s0;
  t = N(X(i64x2.shr_u(b4, 4), b0), m4); b0 = X(b0, t); b4 = X(b4, i64x2.shl(t, 4));
  t = N(X(i64x2.shr_u(b5, 4), b1), m4); b1 = X(b1, t); b5 = X(b5, i64x2.shl(t, 4));
  t = N(X(i64x2.shr_u(b6, 4), b2), m4); b2 = X(b2, t); b6 = X(b6, i64x2.shl(t, 4));
  t = N(X(i64x2.shr_u(b7, 4), b3), m4); b3 = X(b3, t); b7 = X(b7, i64x2.shl(t, 4));
  t = N(X(i64x2.shr_u(b2, 2), b0), m2); b0 = X(b0, t); b2 = X(b2, i64x2.shl(t, 2));
  t = N(X(i64x2.shr_u(b3, 2), b1), m2); b1 = X(b1, t); b3 = X(b3, i64x2.shl(t, 2));
  t = N(X(i64x2.shr_u(b6, 2), b4), m2); b4 = X(b4, t); b6 = X(b6, i64x2.shl(t, 2));
  t = N(X(i64x2.shr_u(b7, 2), b5), m2); b5 = X(b5, t); b7 = X(b7, i64x2.shl(t, 2));
  t = N(X(i64x2.shr_u(b1, 1), b0), m1); b0 = X(b0, t); b1 = X(b1, i64x2.shl(t, 1));
  t = N(X(i64x2.shr_u(b3, 1), b2), m1); b2 = X(b2, t); b3 = X(b3, i64x2.shl(t, 1));
  t = N(X(i64x2.shr_u(b5, 1), b4), m1); b4 = X(b4, t); b5 = X(b5, i64x2.shl(t, 1));
  t = N(X(i64x2.shr_u(b7, 1), b6), m1); b6 = X(b6, t); b7 = X(b7, i64x2.shl(t, 1));

  // XOR the keystream into the data: blocks `first`.. in order; lengths and `first` are public.
  let rem = <isize>len;
  let q = p;
  if (first == 0 && rem > 0) { rem = xorBlock(q, b0, rem); q += 16; }
  if (rem > 0) { rem = xorBlock(q, b1, rem); q += 16; }
  if (rem > 0) { rem = xorBlock(q, b2, rem); q += 16; }
  if (rem > 0) { rem = xorBlock(q, b3, rem); q += 16; }
  if (rem > 0) { rem = xorBlock(q, b4, rem); q += 16; }
  if (rem > 0) { rem = xorBlock(q, b5, rem); q += 16; }
  if (rem > 0) { rem = xorBlock(q, b6, rem); q += 16; }
  if (rem > 0) { xorBlock(q, b7, rem); }
  return b0;
}

/** XORs `k` into min(16, rem) bytes at `q`; returns rem - 16. */
@inline function xorBlock(q: usize, k: v128, rem: isize): isize {
  if (rem >= 16) {
    v128.store(q, v128.xor(v128.load(q), k));
  } else {
    let w = i64x2.extract_lane(k, 0);
    for (let i: isize = 0; i < rem; i++) {
      if (i == 8) w = i64x2.extract_lane(k, 1);
      store<u8>(q + i, load<u8>(q + i) ^ <u8>w);
      w >>>= 8;
    }
  }
  return rem - 16;
}

/** GF(2^8) multiplication modulo x^8+x^4+x^3+x+1, with masks instead of branches. */
@inline function gmul(a: u32, b: u32): u32 {
  let r: u32 = 0;
  for (let i = 0; i < 8; i++) {
    r ^= a & (0 - (b & 1));
    b >>= 1;
    a = (a << 1) ^ (0x11b & (0 - (a >> 7)));
  }
  return r;
}

/** The AES S-box of one byte: inverse by x^254 (public exponent), then the affine map. */
export function sbox_ct(x: u32): u32 {
  const x2 = gmul(x, x);
  const x3 = gmul(x2, x);
  const x6 = gmul(x3, x3);
  const x12 = gmul(x6, x6);
  const x15 = gmul(x12, x3);
  const x30 = gmul(x15, x15);
  const x60 = gmul(x30, x30);
  const x120 = gmul(x60, x60);
  const x126 = gmul(x120, x6);
  const x127 = gmul(x126, x);
  const x254 = gmul(x127, x127);
  let s = x254;
  for (let i = 1; i < 5; i++) s ^= ((x254 << i) | (x254 >> (8 - i))) & 0xff;
  return s ^ 0x63;
}

@inline function subWord(w: u32): u32 {
  return (
    sbox_ct(w & 0xff) |
    (sbox_ct((w >> 8) & 0xff) << 8) |
    (sbox_ct((w >> 16) & 0xff) << 16) |
    (sbox_ct(w >> 24) << 24)
  );
}

/**
 * Expands the key at `key` (16 or 32 bytes) into sliced round keys at `rk` (AES_RK_BYTES). `tmp`
 * (240 bytes; may be `key` itself) receives the plain schedule and is zeroed before returning.
 * Returns the number of rounds (10 or 14), or 0 for another key length.
 */
export function aes_expand(rk: usize, key: usize, keyLen: i32, tmp: usize): i32 {
  if (keyLen != 16 && keyLen != 32) return 0;
  const nk = keyLen >> 2;
  const nr = nk + 6;
  const words = (nr + 1) << 2;
  if (tmp != key) memory.copy(tmp, key, keyLen);
  let rcon: u32 = 1;
  for (let i = nk; i < words; i++) {
    let w = load<u32>(tmp + ((<usize>i - 1) << 2)); // little-endian: byte 0 in the low bits
    if (i % nk == 0) {
      w = subWord(rotr<u32>(w, 8)) ^ rcon;
      rcon = (rcon << 1) ^ (0x11b & (0 - (rcon >> 7)));
    } else if (nk > 6 && i % nk == 4) {
      w = subWord(w);
    }
    store<u32>(tmp + (<usize>i << 2), w ^ load<u32>(tmp + ((<usize>i - nk) << 2)));
  }
  // Slice: plane i of a key replicated to 8 blocks is 0xff where bit i of the key byte is set.
  const c63 = i8x16.splat(0x63);
  for (let r = 0; r <= nr; r++) {
    let kb = v128.load(tmp + (<usize>r << 4));
    if (r > 0) kb = v128.xor(kb, c63); // the S-box NOTs, folded in
    kb = swz(kb, v128.load(KEY_MASKS + (<usize>(r & 3) << 4))); // the drifted byte order
    for (let i = 0; i < 8; i++) {
      const one: i32 = 1 << i;
      const bit = i8x16.splat(<i8>one);
      const plane = i8x16.ne(v128.and(kb, bit), i8x16.splat(0));
      v128.store(rk + (<usize>r << 7) + (<usize>i << 4), plane);
    }
  }
  memory.fill(tmp, 0, <usize>words << 2);
  return nr;
}
