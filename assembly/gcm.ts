// AES-GCM (NIST SP 800-38D) over batches of messages, in place, 96-bit nonces, tags of 16/12/8 bytes.
//
// Owns the mode: counter blocks, the order of AES and GHASH, tags. The primitives are aes.ts
// (bitsliced AES, 8 blocks per call) and ghash.ts (constant-time GHASH, 4 blocks per reduction);
// both are constant-time, and this file adds no secret-dependent branch or index: the tag check ORs
// the XOR of all tag bytes and only the final pass/fail (which the caller learns anyway) is branched on.
//
// Counter blocks go to AES 8 at a time. The first call also encrypts J0 (nonce || 1), whose
// keystream E(K, J0) masks the tag, so a 64-byte packet costs one 8-block AES call.
// Open hashes the AAD and the whole ciphertext first, then decrypts the first 112 bytes (the call
// that yields E(K, J0)), checks the tag, and on failure stops: the rest is
// never decrypted; the whole text is zeroed, so no plaintext stays in the buffer.
//
// Every export takes the key context pointer (layout GCM_CTX_* in constants.ts) and the batch; the
// context is read-only after gcm_init, so several threads may use one context at once.
import { aes_encrypt8_xor, aes_expand } from './aes';
import {
  GCM_CTX_H,
  GCM_CTX_KEY,
  GCM_CTX_NR,
  GCM_CTX_RK,
  GCM_ERR_AUTH,
  GCM_ERR_KEY_LEN,
  GCM_ERR_TAG_LEN,
  GCM_OK,
  GCMD_AAD,
  GCMD_AAD_LEN,
  GCMD_NONCE,
  GCMD_SIZE,
  GCMD_STATUS,
  GCMD_TAG,
  GCMD_TAG_LEN,
  GCMD_TEXT,
  GCMD_TEXT_LEN,
} from './constants';
import { ghash_init, ghash_lengths, ghash_update } from './ghash';

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
  store<u32>(ctx + GCM_CTX_NR, nr);
  return GCM_OK;
}

/** Zeroes a context (key retired). */
export function gcm_wipe(ctx: usize, size: usize): void {
  memory.fill(ctx, 0, size);
}

/** Seals each message of the batch in place; returns how many failed (bad tag length). */
export function gcm_seal_batch(ctx: usize, descs: usize, n: u32): u32 {
  let failed: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const d = descs + <usize>i * GCMD_SIZE;
    const st = seal1(ctx, d);
    store<u32>(d + GCMD_STATUS, st);
    if (st != GCM_OK) failed++;
  }
  return failed;
}

/** Opens each message of the batch in place; returns how many failed (auth or tag length). */
export function gcm_open_batch(ctx: usize, descs: usize, n: u32): u32 {
  let failed: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const d = descs + <usize>i * GCMD_SIZE;
    const st = open1(ctx, d);
    store<u32>(d + GCMD_STATUS, st);
    if (st != GCM_OK) failed++;
  }
  return failed;
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

/** CTR over text[from..n) starting at counter `ctr` (8 blocks per call). */
@inline function ctrRest(rk: usize, nr: i32, iv: v128, ctr: u32, text: usize, from: usize, n: usize): void {
  let off = from;
  while (off < n) {
    const l = n - off < 128 ? n - off : 128;
    ctr8(rk, nr, iv, ctr, text + off, l, 0);
    off += l;
    ctr += 8;
  }
}

function seal1(ctx: usize, d: usize): u32 {
  const tagLen = load<u32>(d + GCMD_TAG_LEN);
  if (!validTagLen(tagLen)) return GCM_ERR_TAG_LEN;
  const rk = ctx + GCM_CTX_RK;
  const hk = ctx + GCM_CTX_H;
  const nr = load<i32>(ctx + GCM_CTX_NR);
  const text = <usize>load<u32>(d + GCMD_TEXT);
  const n = <usize>load<u32>(d + GCMD_TEXT_LEN);
  const aad = <usize>load<u32>(d + GCMD_AAD);
  const aadLen = <usize>load<u32>(d + GCMD_AAD_LEN);
  const iv = nonceBlock(<usize>load<u32>(d + GCMD_NONCE));

  const first = n < 112 ? n : 112;
  const ej0 = ctr8(rk, nr, iv, 1, text, first, 1);
  ctrRest(rk, nr, iv, 9, text, first, n);

  let y = ghash_update(hk, i64x2.splat(0), aad, aadLen);
  y = ghash_update(hk, y, text, n);
  y = ghash_lengths(hk, y, aadLen, n);
  const tag = v128.xor(y, ej0);
  const tp = <usize>load<u32>(d + GCMD_TAG);
  store<u64>(tp, i64x2.extract_lane(tag, 0));
  if (tagLen == 16) store<u64>(tp, i64x2.extract_lane(tag, 1), 8);
  else if (tagLen == 12) store<u32>(tp, i32x4.extract_lane(tag, 2), 8);
  return GCM_OK;
}

function open1(ctx: usize, d: usize): u32 {
  const tagLen = load<u32>(d + GCMD_TAG_LEN);
  if (!validTagLen(tagLen)) return GCM_ERR_TAG_LEN;
  const rk = ctx + GCM_CTX_RK;
  const hk = ctx + GCM_CTX_H;
  const nr = load<i32>(ctx + GCM_CTX_NR);
  const text = <usize>load<u32>(d + GCMD_TEXT);
  const n = <usize>load<u32>(d + GCMD_TEXT_LEN);
  const aad = <usize>load<u32>(d + GCMD_AAD);
  const aadLen = <usize>load<u32>(d + GCMD_AAD_LEN);
  const iv = nonceBlock(<usize>load<u32>(d + GCMD_NONCE));

  let y = ghash_update(hk, i64x2.splat(0), aad, aadLen);
  y = ghash_update(hk, y, text, n);
  y = ghash_lengths(hk, y, aadLen, n);

  const first = n < 112 ? n : 112;
  const ej0 = ctr8(rk, nr, iv, 1, text, first, 1);
  const tag = v128.xor(y, ej0);
  const tp = <usize>load<u32>(d + GCMD_TAG);
  // Constant-time comparison: accumulate differences, branch only on the overall result.
  let diff = i64x2.extract_lane(tag, 0) ^ load<u64>(tp);
  if (tagLen == 16) diff |= i64x2.extract_lane(tag, 1) ^ load<u64>(tp, 8);
  else if (tagLen == 12) diff |= <u64>(i32x4.extract_lane(tag, 2) ^ load<u32>(tp, 8));
  if (diff != 0) {
    memory.fill(text, 0, n);
    return GCM_ERR_AUTH;
  }
  ctrRest(rk, nr, iv, 9, text, first, n);
  return GCM_OK;
}
