// AES-GCM (NIST SP 800-38D) over batches of messages, in place, 96-bit nonces, tags of 16/12/8 bytes.
//
// Owns the mode: counter blocks, the order of AES and GHASH, tags. The primitives are aes.ts
// (bitsliced AES, 8 blocks per call) and ghash.ts (constant-time GHASH: a group of up to 16 messages
// at once through swizzle tables, when that is cheaper than one by one (aloneCost); a message
// alone in the same lanes, 16 of its blocks at once, when it has at least LONG_BLOCKS blocks;
// else 4 blocks per reduction with integer multiplies);
// both are constant-time, and this file adds no secret-dependent branch or index: the tag check ORs
// the XOR of all tag bytes and only the final pass/fail (which the caller learns anyway) is branched on.
//
// Counter blocks go to AES 8 at a time; a message with two or more calls has round 1 of its
// counter blocks precomputed (see "counter mode with round 1 precomputed" below: one per-message
// pass plus a per-key table indexed by the public counter, so no secret index). The first call also
// encrypts J0 (nonce || 1), whose
// keystream E(K, J0) masks the tag, so a 64-byte packet costs one 8-block AES call; in a group of
// 16 (below), a message whose text fills whole calls takes E(K, J0) from a call shared with others.
// Open hashes the AAD and the whole ciphertext first. If E(K, J0) is already known it checks the
// tag before decrypting anything; otherwise it decrypts the first 112 bytes (the call that yields
// E(K, J0)), checks the tag, and on failure stops. Either way a failed message's text is zeroed,
// so no plaintext stays in the buffer.
//
// Every export takes the key context pointer (layout GCM_CTX_* in constants.ts), the batch and a
// scratch region owned by the calling thread (GCM_SC_*); the context is read-only after gcm_init,
// so several threads may use one context at once. No module global holds state.
import { aes_ctr8_from1, aes_encrypt8_xor, aes_expand, aes_round1_sliced } from './aes';
import {
  GCM_CTX_H,
  GCM_CTX_KEY,
  GCM_CTX_NR,
  GCM_CTX_RK,
  GCM_CTX_T,
  GCM_CTX_T16,
  GCM_CTX_W,
  GCM_ERR_AUTH,
  GCM_ERR_KEY_LEN,
  GCM_ERR_TAG_LEN,
  GCM_OK,
  GCM_WINDOW,
  GCMD_AAD,
  GCMD_AAD_LEN,
  GCMD_NONCE,
  GCMD_SIZE,
  GCMD_STATUS,
  GCMD_TAG,
  GCMD_TAG_LEN,
  GCMD_TEXT,
  GCMD_TEXT_LEN,
  GCM_SC_EJ0,
  GCM_SC_LIST,
  GCM_SC_ORDER,
  GCM_SC_PARAMS,
  GCM_SC_RPTR,
  GCM_SC_ROWS,
  GCM_SC_SN,
  GCM_SC_TMP,
  GCM_SC_X,
  GCM_SC_Y,
} from './constants';
import {
  ghash_init,
  ghash_length_block,
  ghash_power16,
  ghash_lengths,
  ghash_update,
  ghash16_absorb_rows,
  ghash16_init,
  ghash16_transpose,
} from './ghash';

/**
 * Expands the key the host wrote at ctx + GCM_CTX_KEY (`keyLen` = 16 or 32 bytes): round keys and
 * powers of H. The raw key is zeroed either way. Returns GCM_OK or GCM_ERR_KEY_LEN.
 */
export function gcm_init(ctx: usize, keyLen: i32): i32 {
  const tmp = ctx + GCM_CTX_KEY;
  const nr = aes_expand(ctx + GCM_CTX_RK, tmp, keyLen, tmp);
  if (nr == 0) {
    memory.fill(tmp, 0, 32);
    return GCM_ERR_KEY_LEN;
  }
  const z = i64x2.splat(0);
  const h = aes_encrypt8_xor(ctx + GCM_CTX_RK, nr, z, z, z, z, z, z, z, z, 0, 0, 0);
  ghash_init(ctx + GCM_CTX_H, h);
  ghash16_init(ctx + GCM_CTX_T, ctx + GCM_CTX_H, tmp);
  // H^16's parts go where the CTR table goes next (which overwrites them).
  ghash_power16(ctx + GCM_CTX_H, h, ctx + GCM_CTX_W);
  ghash16_init(ctx + GCM_CTX_T16, ctx + GCM_CTX_W, tmp);
  ctrTableInit(ctx + GCM_CTX_RK, ctx + GCM_CTX_W, tmp);
  store<u32>(ctx + GCM_CTX_NR, nr);
  return GCM_OK;
}

// ---- counter mode with round 1 precomputed ----------------------------------------------------
// The 8 counter blocks of one AES call differ only in byte 15 (while the counter stays below 256),
// so after round 1 their state is R(nonce) ^ V(key, counters), R the same for every call of a
// message and V the same for every message (round 1 is affine, SubBytes works bytewise, and byte
// 15 feeds one column): R comes from one round-1 pass per message (GCM_SC_SN), V from a table built
// at gcm_init for the counter starts the mode uses (1 or 2 mod 8). Each further call then skips the
// input transpose and round 1. The table is indexed by the counter, which is public.

const CTR_STARTS: i32 = 62;

/** W[e] = round-1 planes of zero-nonce counters c..c+7 (c = start e) ^ round-1 planes of 8 zero blocks. */
function ctrTableInit(rk: usize, w: usize, tmp: usize): void {
  const z = i64x2.splat(0);
  aes_round1_sliced(rk, z, z, z, z, z, z, z, z, tmp);
  for (let e = 0; e < CTR_STARTS; e++) {
    const c = <u32>(((e >> 1) << 3) + 1 + (e & 1));
    const we = w + (<usize>e << 7);
    aes_round1_sliced(
      rk,
      i32x4.replace_lane(z, 3, bswap<u32>(c)),
      i32x4.replace_lane(z, 3, bswap<u32>(c + 1)),
      i32x4.replace_lane(z, 3, bswap<u32>(c + 2)),
      i32x4.replace_lane(z, 3, bswap<u32>(c + 3)),
      i32x4.replace_lane(z, 3, bswap<u32>(c + 4)),
      i32x4.replace_lane(z, 3, bswap<u32>(c + 5)),
      i32x4.replace_lane(z, 3, bswap<u32>(c + 6)),
      i32x4.replace_lane(z, 3, bswap<u32>(c + 7)),
      we,
    );
    for (let i: usize = 0; i < 128; i += 16) v128.store(we + i, v128.xor(v128.load(we + i), v128.load(tmp + i)));
  }
  memory.fill(tmp, 0, 128);
}

/** The table entry for counter start `ctr`, or 0 when the table has none. */
@inline function ctrEntry(ctx: usize, ctr: u32): usize {
  const low = ctr & 7;
  if (ctr > 242 || (low != 1 && low != 2)) return 0;
  return ctx + GCM_CTX_W + (<usize>(((ctr >> 3) << 1) + low - 1) << 7);
}

/** Stores the message's round-1 planes (8 copies of nonce || 0) at sn when it has >= 2 AES calls. */
@inline function ctrPrepare(rk: usize, iv: v128, calls: usize, sn: usize): bool {
  if (calls < 2) return false;
  aes_round1_sliced(rk, iv, iv, iv, iv, iv, iv, iv, iv, sn);
  return true;
}

/** One 8-block CTR call (counters ctr..ctr+7), through the round-1 table when `cached` allows. */
@inline function ctrCall(ctx: usize, nr: i32, iv: v128, ctr: u32, p: usize, len: usize, first: i32, sn: usize, cached: bool): v128 {
  const w = cached ? ctrEntry(ctx, ctr) : 0;
  if (w != 0) return aes_ctr8_from1(ctx + GCM_CTX_RK, nr, sn, w, p, len, first);
  return ctr8(ctx + GCM_CTX_RK, nr, iv, ctr, p, len, first);
}

/** CTR over text[from..n) starting at counter `ctr` (8 blocks per call). */
function ctrRun(ctx: usize, nr: i32, iv: v128, ctr: u32, text: usize, from: usize, n: usize, sn: usize, cached: bool): void {
  let off = from;
  while (off < n) {
    const l = n - off < 128 ? n - off : 128;
    ctrCall(ctx, nr, iv, ctr, text + off, l, 0, sn, cached);
    off += l;
    ctr += 8;
  }
}

/** AES calls a message of n bytes needs (with J0 in the first call unless its E(K, J0) is shared). */
@inline function ctrCalls(n: usize, withJ0: bool): usize {
  return withJ0 ? (n + 16 + 127) >> 7 : (n + 127) >> 7;
}

/** Zeroes a context (key retired). */
export function gcm_wipe(ctx: usize, size: usize): void {
  memory.fill(ctx, 0, size);
}

/**
 * Seals each message of the batch in place; returns how many failed (bad tag length). `scratch`
 * is GCM_SCRATCH_SIZE bytes owned by the calling thread.
 */
export function gcm_seal_batch(ctx: usize, descs: usize, n: u32, scratch: usize): u32 {
  return runBatch(ctx, descs, n, scratch, true);
}

/** Opens each message of the batch in place; returns how many failed (auth or tag length). */
export function gcm_open_batch(ctx: usize, descs: usize, n: u32, scratch: usize): u32 {
  return runBatch(ctx, descs, n, scratch, false);
}

/**
 * Runs the batch in windows of GCM_WINDOW descriptors. Within a window the messages are taken in
 * order of length (lengths are public), so runs of up to 16 similar lengths form GHASH groups even
 * when the batch mixes sizes (groupRounds decides); the rest go one at a time. Every message is
 * independent, so the order in which they are processed does not matter.
 */
function runBatch(ctx: usize, descs: usize, n: u32, scratch: usize, seal: bool): u32 {
  const order = scratch + GCM_SC_ORDER;
  const list = scratch + GCM_SC_LIST;
  let failed: u32 = 0;
  const window = <u32>GCM_WINDOW;
  for (let w: u32 = 0; w < n; w += window) {
    const m: u32 = n - w < window ? n - w : window;
    const base = descs + <usize>w * GCMD_SIZE;
    sortByLength(base, m, order);
    let i: u32 = 0;
    while (i < m) {
      const c: u32 = m - i < 16 ? m - i : 16;
      if (c >= 2) {
        for (let j: u32 = 0; j < c; j++) {
          store<u32>(list + (<usize>j << 2), <u32>(base + <usize>(load<u32>(order + (<usize>(i + j) << 2)) & 0xff) * GCMD_SIZE));
        }
        // A group of fewer than 16: the spare lanes hash message 0 again, and their results are unused.
        for (let j: u32 = c; j < 16; j++) store<u32>(list + (<usize>j << 2), load<u32>(list));
        const rounds = groupRounds(list, c);
        if (rounds > 0) {
          if (seal) seal16(ctx, list, rounds, scratch, c);
          else failed += open16(ctx, list, rounds, scratch, c);
          i += c;
          continue;
        }
      }
      const d = base + <usize>(load<u32>(order + (<usize>i << 2)) & 0xff) * GCMD_SIZE;
      const st = seal ? seal1(ctx, d, scratch) : open1(ctx, d, scratch);
      store<u32>(d + GCMD_STATUS, st);
      if (st != GCM_OK) failed++;
      i++;
    }
  }
  return failed;
}

/** Writes the m (<= GCM_WINDOW) descriptor indices at base to `order`, shortest GHASH input first. */
function sortByLength(base: usize, m: u32, order: usize): void {
  for (let i: u32 = 0; i < m; i++) {
    const b = hashBlocks(base + <usize>i * GCMD_SIZE);
    const key: u32 = ((b < 0xffffff ? b : 0xffffff) << 8) | i;
    // Insertion sort: at most 64 entries, usually already in order (equal sizes).
    let k = i;
    while (k > 0 && load<u32>(order + (<usize>(k - 1) << 2)) > key) {
      store<u32>(order + (<usize>k << 2), load<u32>(order + (<usize>(k - 1) << 2)));
      k--;
    }
    store<u32>(order + (<usize>k << 2), key);
  }
}

// ---- groups of up to 16 messages: GHASH through the 16-lane swizzle tables ---------------------
// Message j of a group hashes its blocks (AAD, ciphertext, lengths) in lane j. Lanes run in step,
// so shorter messages are right-aligned: they start with zero blocks, which leave a zero state
// unchanged. A group is used when every tag length is valid and its rounds cost less than hashing
// its messages alone (groupRounds); otherwise messages go one by one. In a group of fewer than 16
// the spare lanes hash a copy of message 0 and their results are never read.

/** GHASH blocks of one message: AAD blocks + text blocks + the lengths block. */
@inline function hashBlocks(d: usize): u32 {
  return ((load<u32>(d + GCMD_AAD_LEN) + 15) >> 4) + ((load<u32>(d + GCMD_TEXT_LEN) + 15) >> 4) + 1;
}

/**
 * The rounds (longest message in blocks) if the first `count` messages listed are cheaper hashed
 * as a group (one 16-lane round per block of the longest) than one by one, else 0.
 */
function groupRounds(list: usize, count: u32): u32 {
  let most: u32 = 0;
  let alone: u64 = 0;
  for (let j: usize = 0; j < <usize>count; j++) {
    const dj = <usize>load<u32>(list + (j << 2));
    if (!validTagLen(load<u32>(dj + GCMD_TAG_LEN))) return 0;
    const m = hashBlocks(dj);
    alone += aloneCost(m);
    if (m > most) most = m;
  }
  return alone >= <u64>most << 4 ? most : 0;
}

/**
 * What hashing a message of m GHASH blocks alone costs, in 1/16 of a group round (one 16-lane
 * absorb), as measured with its GCM share: about m / 6 rounds on the integer-multiply path, and on
 * the H^16 lanes one round per 16 blocks plus about 3 for the 16-row combine (and, at sizes of
 * whole AES calls, the E(K, J0) call a group shares). So groups pay from ~5 messages of 64-400
 * bytes and from ~9-10 of 1400 bytes.
 */
@inline function aloneCost(m: u32): u64 {
  if (m < LONG_BLOCKS) return <u64>((m << 3) / 3 + 5);
  return (<u64>((m + 15) >> 4) + 3) << 4;
}

/** Copies len (<= 16) bytes from src to the 16-byte block at dst, zero-padded. */
@inline function padBlock(dst: usize, src: usize, len: usize): void {
  if (len >= 16) {
    v128.store(dst, v128.load(src));
  } else {
    v128.store(dst, i64x2.splat(0));
    memory.copy(dst, src, len);
  }
}

/** Block i of message d's GHASH input (i < 0: a zero block of right-alignment) into dst. */
function fetchBlock(dst: usize, d: usize, i: i32): void {
  if (i < 0) {
    v128.store(dst, i64x2.splat(0));
    return;
  }
  const aadLen = <usize>load<u32>(d + GCMD_AAD_LEN);
  const n = <usize>load<u32>(d + GCMD_TEXT_LEN);
  const aB = <i32>((aadLen + 15) >> 4);
  const cB = <i32>((n + 15) >> 4);
  if (i < aB) {
    const off = <usize>i << 4;
    padBlock(dst, <usize>load<u32>(d + GCMD_AAD) + off, aadLen - off);
  } else if (i < aB + cB) {
    const off = <usize>(i - aB) << 4;
    padBlock(dst, <usize>load<u32>(d + GCMD_TEXT) + off, n - off);
  } else {
    v128.store(dst, ghash_length_block(aadLen, n));
  }
}

/**
 * Fills the group's per-message parameters (GCM_SC_PARAMS: text, round of the first text block,
 * full text blocks, first round) and zeroes its state. Returns the rounds [lo, hi) in which every
 * lane hashes a full text block (the bulk of a group of similar sizes) as lo << 32 | hi.
 */
function groupStart(list: usize, rounds: u32, scratch: usize): u64 {
  const prm = scratch + GCM_SC_PARAMS;
  memory.fill(scratch + GCM_SC_Y, 0, 256);
  let lo: u32 = 0;
  let hi: u32 = rounds;
  for (let j: usize = 0; j < 16; j++) {
    const dj = <usize>load<u32>(list + (j << 2));
    const start = rounds - hashBlocks(dj);
    const first = start + ((load<u32>(dj + GCMD_AAD_LEN) + 15) >> 4);
    const full = load<u32>(dj + GCMD_TEXT_LEN) >> 4;
    const q = prm + (j << 4);
    store<u32>(q, load<u32>(dj + GCMD_TEXT));
    store<u32>(q, first, 4);
    store<u32>(q, full, 8);
    store<u32>(q, start, 12);
    if (first > lo) lo = first;
    if (first + full < hi) hi = first + full;
  }
  return (<u64>lo << 32) | hi;
}

/** The group's row addresses (GCM_SC_RPTR) for round k: full text blocks where they lie, others copied. */
function groupRows(list: usize, k: u32, scratch: usize): void {
  const prm = scratch + GCM_SC_PARAMS;
  const rows = scratch + GCM_SC_RPTR;
  const x = scratch + GCM_SC_X;
  for (let j: usize = 0; j < 16; j++) {
    const q = prm + (j << 4);
    const i = k - load<u32>(q, 4); // wraps below the first text block
    if (i < load<u32>(q, 8)) {
      // A full text block: hashed where it lies.
      store<u32>(rows + (j << 2), load<u32>(q) + (i << 4));
    } else {
      const dj = <usize>load<u32>(list + (j << 2));
      fetchBlock(x + (j << 4), dj, <i32>k - <i32>load<u32>(q, 12));
      store<u32>(rows + (j << 2), <u32>(x + (j << 4)));
    }
  }
}

/** The row addresses for round k when every lane is in its full text (see groupStart). */
function groupRowsFull(k: u32, scratch: usize): void {
  const prm = scratch + GCM_SC_PARAMS;
  const rows = scratch + GCM_SC_RPTR;
  for (let j: usize = 0; j < 16; j++) {
    const q = prm + (j << 4);
    store<u32>(rows + (j << 2), load<u32>(q) + ((k - load<u32>(q, 4)) << 4));
  }
}

/** Inside the full-text rounds, every lane's row advances one block per round: 4 vector adds. */
@inline function groupRowsNext(scratch: usize): void {
  const rows = scratch + GCM_SC_RPTR;
  const step = i32x4.splat(16);
  v128.store(rows, i32x4.add(v128.load(rows), step));
  v128.store(rows, i32x4.add(v128.load(rows, 16), step), 16);
  v128.store(rows, i32x4.add(v128.load(rows, 32), step), 32);
  v128.store(rows, i32x4.add(v128.load(rows, 48), step), 48);
}

/** GHASH of the 16 listed messages over their current texts; row j at scratch + GCM_SC_ROWS. */
function ghash16Group(ctx: usize, list: usize, rounds: u32, scratch: usize): void {
  const range = groupStart(list, rounds, scratch);
  const lo = <u32>(range >> 32);
  const hi = <u32>range;
  const y = scratch + GCM_SC_Y;
  const rows = scratch + GCM_SC_RPTR;
  const tmp = scratch + GCM_SC_TMP;
  let k: u32 = 0;
  while (k < rounds) {
    if (k == lo && lo < hi) {
      groupRowsFull(k, scratch);
      for (; k < hi; k++) {
        ghash16_absorb_rows(ctx + GCM_CTX_T, y, rows, tmp);
        groupRowsNext(scratch);
      }
      continue;
    }
    groupRows(list, k, scratch);
    ghash16_absorb_rows(ctx + GCM_CTX_T, y, rows, tmp);
    k++;
  }
  ghash16_transpose(y, scratch + GCM_SC_ROWS);
}

/**
 * True when a message's text is a whole number of 8-block AES calls (e.g. 1400 bytes = 88 blocks):
 * J0 would then cost it one more call of which 7 blocks are wasted, so its E(K, J0) comes from a
 * call shared with up to 7 other messages of the group instead.
 */
@inline function sharedJ0(n: usize): bool {
  const b = (n + 15) >> 4;
  return b != 0 && (b & 7) == 0;
}

/** E(K, J0) of the group's sharedJ0 messages, 8 per AES call, into scratch + GCM_SC_EJ0 + 16j. */
function groupJ0(rk: usize, nr: i32, list: usize, scratch: usize, n: u32): void {
  const j0s = scratch + GCM_SC_TMP; // up to 16 J0 blocks
  const out = j0s + 256; // 128 bytes of keystream
  const lanes = j0s + 384; // their message indices, one byte each
  let count: usize = 0;
  for (let j: usize = 0; j < <usize>n; j++) {
    const dj = <usize>load<u32>(list + (j << 2));
    if (!sharedJ0(<usize>load<u32>(dj + GCMD_TEXT_LEN))) continue;
    v128.store(j0s + (count << 4), i32x4.replace_lane(nonceBlock(<usize>load<u32>(dj + GCMD_NONCE)), 3, bswap<u32>(1)));
    store<u8>(lanes + count, <u8>j);
    count++;
  }
  for (let c: usize = 0; c < count; c += 8) {
    // Lanes past `count` encrypt stale blocks whose output is ignored.
    const l = j0s + (c << 4);
    memory.fill(out, 0, 128);
    aes_encrypt8_xor(
      rk,
      nr,
      v128.load(l),
      v128.load(l, 16),
      v128.load(l, 32),
      v128.load(l, 48),
      v128.load(l, 64),
      v128.load(l, 80),
      v128.load(l, 96),
      v128.load(l, 112),
      out,
      128,
      0,
    );
    const m = count - c < 8 ? count - c : 8;
    for (let k: usize = 0; k < m; k++) {
      v128.store(scratch + GCM_SC_EJ0 + (<usize>load<u8>(lanes + c + k) << 4), v128.load(out + (k << 4)));
    }
  }
}

/** Seals the first `count` (<= 16) messages listed; the list holds 16 (see runBatch). */
function seal16(ctx: usize, list: usize, rounds: u32, scratch: usize, count: u32): void {
  const rk = ctx + GCM_CTX_RK;
  const nr = load<i32>(ctx + GCM_CTX_NR);
  const sn = scratch + GCM_SC_SN;
  groupJ0(rk, nr, list, scratch, count);
  for (let j: usize = 0; j < <usize>count; j++) {
    const dj = <usize>load<u32>(list + (j << 2));
    const text = <usize>load<u32>(dj + GCMD_TEXT);
    const n = <usize>load<u32>(dj + GCMD_TEXT_LEN);
    const iv = nonceBlock(<usize>load<u32>(dj + GCMD_NONCE));
    if (sharedJ0(n)) {
      const cached = ctrPrepare(rk, iv, ctrCalls(n, false), sn);
      ctrRun(ctx, nr, iv, 2, text, 0, n, sn, cached);
    } else {
      const cached = ctrPrepare(rk, iv, ctrCalls(n, true), sn);
      const first = n < 112 ? n : 112;
      v128.store(scratch + GCM_SC_EJ0 + (j << 4), ctrCall(ctx, nr, iv, 1, text, first, 1, sn, cached));
      ctrRun(ctx, nr, iv, 9, text, first, n, sn, cached);
    }
  }
  ghash16Group(ctx, list, rounds, scratch);
  for (let j: usize = 0; j < <usize>count; j++) {
    const dj = <usize>load<u32>(list + (j << 2));
    const tag = v128.xor(v128.load(scratch + GCM_SC_ROWS + (j << 4)), v128.load(scratch + GCM_SC_EJ0 + (j << 4)));
    storeTag(<usize>load<u32>(dj + GCMD_TAG), tag, load<u32>(dj + GCMD_TAG_LEN));
    store<u32>(dj + GCMD_STATUS, GCM_OK);
  }
}

/** Opens the first `count` (<= 16) messages listed; the list holds 16 (see runBatch). */
function open16(ctx: usize, list: usize, rounds: u32, scratch: usize, count: u32): u32 {
  const rk = ctx + GCM_CTX_RK;
  const nr = load<i32>(ctx + GCM_CTX_NR);
  const sn = scratch + GCM_SC_SN;
  ghash16Group(ctx, list, rounds, scratch);
  groupJ0(rk, nr, list, scratch, count);
  let failed: u32 = 0;
  for (let j: usize = 0; j < <usize>count; j++) {
    const dj = <usize>load<u32>(list + (j << 2));
    const y = v128.load(scratch + GCM_SC_ROWS + (j << 4));
    const n = <usize>load<u32>(dj + GCMD_TEXT_LEN);
    let st: u32;
    if (sharedJ0(n)) {
      // E(K, J0) is known before any decryption: the tag is checked first.
      const text = <usize>load<u32>(dj + GCMD_TEXT);
      const tag = v128.xor(y, v128.load(scratch + GCM_SC_EJ0 + (j << 4)));
      if (tagDiffers(tag, <usize>load<u32>(dj + GCMD_TAG), load<u32>(dj + GCMD_TAG_LEN))) {
        memory.fill(text, 0, n);
        st = GCM_ERR_AUTH;
      } else {
        const iv = nonceBlock(<usize>load<u32>(dj + GCMD_NONCE));
        const cached = ctrPrepare(rk, iv, ctrCalls(n, false), sn);
        ctrRun(ctx, nr, iv, 2, text, 0, n, sn, cached);
        st = GCM_OK;
      }
    } else {
      st = openTail(ctx, nr, dj, y, sn);
    }
    store<u32>(dj + GCMD_STATUS, st);
    if (st != GCM_OK) failed++;
  }
  return failed;
}

/** Constant-time tag check: accumulates the differences, branches only on the overall result. */
@inline function tagDiffers(tag: v128, tp: usize, tagLen: u32): bool {
  let diff = i64x2.extract_lane(tag, 0) ^ load<u64>(tp);
  if (tagLen == 16) diff |= i64x2.extract_lane(tag, 1) ^ load<u64>(tp, 8);
  else if (tagLen == 12) diff |= <u64>(i32x4.extract_lane(tag, 2) ^ load<u32>(tp, 8));
  return diff != 0;
}

@inline function validTagLen(t: u32): bool {
  return t == 16 || t == 12 || t == 8;
}

/** nonce || 0 as a v128; the counter goes in lane 3 (big-endian). */
@inline function nonceBlock(nonce: usize): v128 {
  return i32x4.replace_lane(v128.load64_zero(nonce), 2, load<u32>(nonce, 8));
}

/** Encrypts counters ctr..ctr+7 and XORs blocks first.. into len bytes at p; returns E(ctr). */
@inline function ctr8(rk: usize, nr: i32, iv: v128, ctr: u32, p: usize, len: usize, first: i32): v128 {
  return aes_encrypt8_xor(
    rk,
    nr,
    i32x4.replace_lane(iv, 3, bswap<u32>(ctr)),
    i32x4.replace_lane(iv, 3, bswap<u32>(ctr + 1)),
    i32x4.replace_lane(iv, 3, bswap<u32>(ctr + 2)),
    i32x4.replace_lane(iv, 3, bswap<u32>(ctr + 3)),
    i32x4.replace_lane(iv, 3, bswap<u32>(ctr + 4)),
    i32x4.replace_lane(iv, 3, bswap<u32>(ctr + 5)),
    i32x4.replace_lane(iv, 3, bswap<u32>(ctr + 6)),
    i32x4.replace_lane(iv, 3, bswap<u32>(ctr + 7)),
    p,
    len,
    first,
  );
}

function seal1(ctx: usize, d: usize, scratch: usize): u32 {
  const sn = scratch + GCM_SC_SN;
  const tagLen = load<u32>(d + GCMD_TAG_LEN);
  if (!validTagLen(tagLen)) return GCM_ERR_TAG_LEN;
  const rk = ctx + GCM_CTX_RK;
  const nr = load<i32>(ctx + GCM_CTX_NR);
  const text = <usize>load<u32>(d + GCMD_TEXT);
  const n = <usize>load<u32>(d + GCMD_TEXT_LEN);
  const iv = nonceBlock(<usize>load<u32>(d + GCMD_NONCE));

  const cached = ctrPrepare(rk, iv, ctrCalls(n, true), sn);
  const first = n < 112 ? n : 112;
  const ej0 = ctrCall(ctx, nr, iv, 1, text, first, 1, sn, cached);
  ctrRun(ctx, nr, iv, 9, text, first, n, sn, cached);

  const y = ghashOne(ctx, d, scratch);
  storeTag(<usize>load<u32>(d + GCMD_TAG), v128.xor(y, ej0), tagLen);
  return GCM_OK;
}

/**
 * Messages of at least this many GHASH blocks go through the H^16 tables when hashed alone: from
 * 24 to 32 blocks that is one 16-lane step plus the 16-row combine, which costs about what 22-23
 * blocks of the integer-multiply path do (measured crossover; 27 blocks: ~10% faster GCM).
 */
const LONG_BLOCKS: u32 = 24;

/** GHASH of message d over its current text (AAD, text, lengths), alone. */
function ghashOne(ctx: usize, d: usize, scratch: usize): v128 {
  const hk = ctx + GCM_CTX_H;
  if (hashBlocks(d) >= LONG_BLOCKS) return ghashLong(ctx, d, scratch);
  const n = <usize>load<u32>(d + GCMD_TEXT_LEN);
  const aadLen = <usize>load<u32>(d + GCMD_AAD_LEN);
  let y = ghash_update(hk, i64x2.splat(0), <usize>load<u32>(d + GCMD_AAD), aadLen);
  y = ghash_update(hk, y, <usize>load<u32>(d + GCMD_TEXT), n);
  return ghash_lengths(hk, y, aadLen, n);
}

/**
 * GHASH of one long message in the 16 lanes: its m blocks, preceded by zero blocks up to a multiple
 * of 16 (which leave a zero state unchanged), go 16 at a time, block 16k + j to lane j. Each step
 * but the last multiplies by H^16 (the T16 tables), so lane j ends with L_j = sum of its blocks
 * X_i H^(16s) (s = later steps), and the hash is sum_j L_j H^(16-j): GHASH of the 16 rows L_0..L_15
 * as one 256-byte input, through the scalar path.
 */
function ghashLong(ctx: usize, d: usize, scratch: usize): v128 {
  const y = scratch + GCM_SC_Y;
  const x = scratch + GCM_SC_X;
  const rows = scratch + GCM_SC_RPTR;
  const out = scratch + GCM_SC_ROWS;
  const m = hashBlocks(d);
  const steps = (m + 15) >> 4;
  const lead = <i32>((steps << 4) - m);
  const text = load<u32>(d + GCMD_TEXT);
  const firstText = <i32>((load<u32>(d + GCMD_AAD_LEN) + 15) >> 4);
  const full = load<u32>(d + GCMD_TEXT_LEN) >> 4;
  memory.fill(y, 0, 256);
  // Steps whose 16 blocks are all full text blocks: text block (16k - lead - firstText) in lane 0.
  const off = lead + firstText;
  const kLo = <u32>((off + 15) >> 4);
  const kHi = (<u32>off + full) >> 4;
  let k: u32 = 0;
  while (k < steps) {
    if (k == kLo && kLo < kHi && k + 1 < steps) {
      // The row addresses advance by 16 blocks per step: 4 vector adds.
      const r0 = i32x4.splat(<i32>text + ((<i32>(k << 4) - off) << 4));
      const ramp = i32x4(0, 16, 32, 48);
      v128.store(rows, i32x4.add(r0, ramp));
      v128.store(rows, i32x4.add(r0, i32x4.add(ramp, i32x4.splat(64))), 16);
      v128.store(rows, i32x4.add(r0, i32x4.add(ramp, i32x4.splat(128))), 32);
      v128.store(rows, i32x4.add(r0, i32x4.add(ramp, i32x4.splat(192))), 48);
      const stride = i32x4.splat(256);
      const end = kHi < steps - 1 ? kHi : steps - 1;
      for (; k < end; k++) {
        ghash16_absorb_rows(ctx + GCM_CTX_T16, y, rows, scratch + GCM_SC_TMP);
        v128.store(rows, i32x4.add(v128.load(rows), stride));
        v128.store(rows, i32x4.add(v128.load(rows, 16), stride), 16);
        v128.store(rows, i32x4.add(v128.load(rows, 32), stride), 32);
        v128.store(rows, i32x4.add(v128.load(rows, 48), stride), 48);
      }
      continue;
    }
    for (let j: usize = 0; j < 16; j++) {
      const i = <i32>(k << 4) + <i32>j - lead; // block index in the message (< 0: leading zero)
      const ti = <u32>(i - firstText);
      if (ti < full) {
        store<u32>(rows + (j << 2), text + (ti << 4));
      } else {
        fetchBlock(x + (j << 4), d, i);
        store<u32>(rows + (j << 2), <u32>(x + (j << 4)));
      }
    }
    if (k + 1 < steps) ghash16_absorb_rows(ctx + GCM_CTX_T16, y, rows, scratch + GCM_SC_TMP);
    k++;
  }
  // The last step's blocks are added without a multiplication.
  ghash16_transpose(y, out);
  for (let j: usize = 0; j < 16; j++) {
    const r = out + (j << 4);
    v128.store(r, v128.xor(v128.load(r), v128.load(<usize>load<u32>(rows + (j << 2)))));
  }
  return ghash_update(ctx + GCM_CTX_H, i64x2.splat(0), out, 256);
}

@inline function storeTag(tp: usize, tag: v128, tagLen: u32): void {
  store<u64>(tp, i64x2.extract_lane(tag, 0));
  if (tagLen == 16) store<u64>(tp, i64x2.extract_lane(tag, 1), 8);
  else if (tagLen == 12) store<u32>(tp, i32x4.extract_lane(tag, 2), 8);
}

function open1(ctx: usize, d: usize, scratch: usize): u32 {
  if (!validTagLen(load<u32>(d + GCMD_TAG_LEN))) return GCM_ERR_TAG_LEN;
  const y = ghashOne(ctx, d, scratch);
  return openTail(ctx, load<i32>(ctx + GCM_CTX_NR), d, y, scratch + GCM_SC_SN);
}

/**
 * Given the GHASH `y` of message d: decrypts its first 112 bytes (the AES call that also yields
 * E(K, J0)), checks the tag in constant time, and either zeroes the text (GCM_ERR_AUTH) or
 * decrypts the rest.
 */
function openTail(ctx: usize, nr: i32, d: usize, y: v128, sn: usize): u32 {
  const tagLen = load<u32>(d + GCMD_TAG_LEN);
  const text = <usize>load<u32>(d + GCMD_TEXT);
  const n = <usize>load<u32>(d + GCMD_TEXT_LEN);
  const iv = nonceBlock(<usize>load<u32>(d + GCMD_NONCE));
  const cached = ctrPrepare(ctx + GCM_CTX_RK, iv, ctrCalls(n, true), sn);
  const first = n < 112 ? n : 112;
  const tag = v128.xor(y, ctrCall(ctx, nr, iv, 1, text, first, 1, sn, cached));
  if (tagDiffers(tag, <usize>load<u32>(d + GCMD_TAG), tagLen)) {
    memory.fill(text, 0, n);
    return GCM_ERR_AUTH;
  }
  ctrRun(ctx, nr, iv, 9, text, first, n, sn, cached);
  return GCM_OK;
}
