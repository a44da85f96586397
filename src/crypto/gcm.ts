// AES-128/256-GCM keys and batches over the WASM core (assembly/gcm.ts).
//
// Owns: key contexts (one GCM_CTX_SIZE region per GcmKey, expanded once: round keys and powers of
// H) and, per WASM instance, one staging region for the single-message convenience calls. The hot
// path is `sealBatch`/`openBatch`: one call into WASM for a whole array of GCMD_* descriptors
// already in linear memory (layout in assembly/constants.ts), results as per-descriptor statuses,
// nothing allocated. `seal`/`open` copy one message in and out of the staging region; they are for
// control-plane use and tests, not for packets.
//
// Several keys live at once (rotation: the old key opens late packets while the new one seals);
// `wipe()` zeroes a retired key's context. Memory is never freed (see assembly/mem.ts), so a wiped
// context is dead weight of 11 KiB: rotate keys, do not create one per packet.
import {
  GCM_CTX_KEY,
  GCM_CTX_NR,
  GCM_CTX_SIZE,
  GCM_ERR_AUTH,
  GCM_ERR_KEY_LEN,
  GCM_ERR_TAG_LEN,
  GCM_NONCE_LEN,
  GCM_OK,
  GCM_SCRATCH_SIZE,
  GCMD_AAD,
  GCMD_AAD_LEN,
  GCMD_NONCE,
  GCMD_SIZE,
  GCMD_STATUS,
  GCMD_TAG,
  GCMD_TAG_LEN,
  GCMD_TEXT,
  GCMD_TEXT_LEN,
} from '../../assembly/constants.js';
import { VxError } from '../errors.js';
import { core, type WasmCore } from '../wasm/module.js';

/** Tag lengths RFC 4106 allows for ESP (Docker's overlay uses 8). */
export type GcmTagLength = 16 | 12 | 8;

/** The WASM exports this module calls. */
export interface GcmExports {
  gcm_init(ctx: number, keyLen: number): number;
  gcm_wipe(ctx: number, size: number): void;
  gcm_seal_batch(ctx: number, descs: number, n: number, scratch: number): number;
  gcm_open_batch(ctx: number, descs: number, n: number, scratch: number): number;
}

/** Largest message `seal`/`open` accept (the batch path is bounded only by u32 lengths). */
export const GCM_MAX_MESSAGE = 64 * 1024 * 1024;

export function gcmExports(c: WasmCore): GcmExports {
  return c.exports as unknown as GcmExports;
}

const scratches = new WeakMap<WasmCore, number>();

/**
 * This thread's scratch region for batch calls on `c` (GCM_SCRATCH_SIZE bytes, allocated once).
 * Scratch is per thread: the pool hands each task its own region instead.
 */
export function threadScratch(c: WasmCore): number {
  let p = scratches.get(c);
  if (p === undefined) {
    p = c.alloc(GCM_SCRATCH_SIZE);
    scratches.set(c, p);
  }
  return p;
}

export class GcmKey {
  /** Address of the key context in linear memory (what batches and pool tasks carry). */
  readonly ctx: number;
  readonly bits: 128 | 256;
  readonly core: WasmCore;
  #wiped = false;

  private constructor(c: WasmCore, ctx: number, bits: 128 | 256) {
    this.core = c;
    this.ctx = ctx;
    this.bits = bits;
  }

  /** Expands a 16- or 32-byte key (AES-128 / AES-256) into a new context. */
  static create(key: Uint8Array, opts: { core?: WasmCore } = {}): GcmKey {
    if (!(key instanceof Uint8Array)) {
      throw new VxError('ERR_BAD_KEY_LENGTH', 'key must be a Uint8Array of 16 or 32 bytes');
    }
    if (key.length !== 16 && key.length !== 32) {
      throw new VxError('ERR_BAD_KEY_LENGTH', `key must be 16 or 32 bytes, got ${key.length}`);
    }
    const c = opts.core ?? core();
    const ctx = c.alloc(GCM_CTX_SIZE);
    c.u8().set(key, ctx + GCM_CTX_KEY);
    const st = gcmExports(c).gcm_init(ctx, key.length);
    if (st === GCM_ERR_KEY_LEN) throw new VxError('ERR_BAD_KEY_LENGTH', `key must be 16 or 32 bytes`);
    return new GcmKey(c, ctx, key.length === 16 ? 128 : 256);
  }

  get wiped(): boolean {
    return this.#wiped;
  }

  /** Zeroes the context (round keys, H powers). The key cannot be used afterwards. */
  wipe(): void {
    gcmExports(this.core).gcm_wipe(this.ctx, GCM_CTX_SIZE);
    this.#wiped = true;
  }

  /** Throws unless the key is usable (not wiped, context intact). */
  check(): void {
    if (this.#wiped || this.core.dv().getUint32(this.ctx + GCM_CTX_NR, true) === 0) {
      throw new VxError('ERR_KEY_WIPED', 'the GCM key was wiped');
    }
  }
}

/** One message of a batch, as addresses and lengths in the key's linear memory. */
export interface GcmMessage {
  text: number;
  textLen: number;
  aad: number;
  aadLen: number;
  nonce: number;
  tag: number;
  tagLen: GcmTagLength;
}

/** Writes descriptor `i` of the array at `descs` (GCMD_SIZE bytes each). */
export function writeGcmDescriptor(dv: DataView, descs: number, i: number, m: GcmMessage): void {
  const d = descs + i * GCMD_SIZE;
  dv.setUint32(d + GCMD_TEXT, m.text, true);
  dv.setUint32(d + GCMD_TEXT_LEN, m.textLen, true);
  dv.setUint32(d + GCMD_AAD, m.aad, true);
  dv.setUint32(d + GCMD_AAD_LEN, m.aadLen, true);
  dv.setUint32(d + GCMD_NONCE, m.nonce, true);
  dv.setUint32(d + GCMD_TAG, m.tag, true);
  dv.setUint32(d + GCMD_TAG_LEN, m.tagLen, true);
  dv.setUint32(d + GCMD_STATUS, GCM_OK, true);
}

/** The status (GCM_OK, GCM_ERR_AUTH, GCM_ERR_TAG_LEN) a batch left in descriptor `i`. */
export function gcmStatus(dv: DataView, descs: number, i: number): number {
  return dv.getUint32(descs + i * GCMD_SIZE + GCMD_STATUS, true);
}

/** Checks a batch's arguments against the memory (the messages' own addresses are checked by WASM). */
export function checkBatch(key: GcmKey, descs: number, n: number): void {
  key.check();
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new VxError('ERR_INVALID_ARG', `n must be a non-negative integer, got ${n}`);
  }
  const size = key.core.memory.buffer.byteLength;
  if (!Number.isInteger(descs) || descs <= 0 || descs + n * GCMD_SIZE > size) {
    throw new VxError('ERR_INVALID_ARG', `descs ${descs} (+${n} descriptors) is outside WASM memory`);
  }
}

function runBatch(op: 'seal' | 'open', key: GcmKey, descs: number, n: number): number {
  checkBatch(key, descs, n);
  const ex = gcmExports(key.core);
  const scratch = threadScratch(key.core);
  try {
    return op === 'seal'
      ? ex.gcm_seal_batch(key.ctx, descs, n, scratch)
      : ex.gcm_open_batch(key.ctx, descs, n, scratch);
  } catch (cause) {
    throw new VxError('ERR_OUT_OF_BOUNDS', `a GCM descriptor points outside WASM memory`, { cause });
  }
}

/**
 * Seals `n` messages in place (text encrypted, tag written). Returns how many failed; each
 * descriptor's status says which (GCM_ERR_TAG_LEN: tag length not 16/12/8).
 */
export function sealBatch(key: GcmKey, descs: number, n: number): number {
  return runBatch('seal', key, descs, n);
}

/**
 * Opens `n` messages in place. Returns how many failed; a failed message (GCM_ERR_AUTH) has its
 * text zeroed, so no unauthenticated plaintext is ever left in memory.
 */
export function openBatch(key: GcmKey, descs: number, n: number): number {
  return runBatch('open', key, descs, n);
}

// ---- single messages ---------------------------------------------------------------------------

interface Staging {
  base: number;
  cap: number; // bytes available for aad + text + tag
}
const staging = new WeakMap<WasmCore, Staging>();
const EMPTY = new Uint8Array(0);
const STAGING_HEADER = 64; // descriptor 32 + nonce 16 + spare

function stage(c: WasmCore, need: number): Staging {
  let s = staging.get(c);
  if (!s || s.cap < need) {
    // Grows by doubling; the old region is abandoned (never freed), so this happens O(log n) times.
    let cap = Math.max(16384, s ? s.cap * 2 : 0);
    while (cap < need) cap *= 2;
    s = { base: c.alloc(STAGING_HEADER + cap), cap };
    staging.set(c, s);
  }
  return s;
}

function checkMessageArgs(nonce: Uint8Array, data: Uint8Array, aad: Uint8Array, tagLength: number): void {
  if (!(nonce instanceof Uint8Array) || nonce.length !== GCM_NONCE_LEN) {
    throw new VxError('ERR_BAD_NONCE_LENGTH', `nonce must be ${GCM_NONCE_LEN} bytes, got ${nonce?.length}`);
  }
  if (tagLength !== 16 && tagLength !== 12 && tagLength !== 8) {
    throw new VxError('ERR_BAD_TAG_LENGTH', `tagLength must be 16, 12 or 8, got ${tagLength}`);
  }
  if (!(data instanceof Uint8Array) || !(aad instanceof Uint8Array)) {
    throw new VxError('ERR_INVALID_ARG', 'text and aad must be Uint8Arrays');
  }
  if (data.length + aad.length > GCM_MAX_MESSAGE) {
    throw new VxError('ERR_MESSAGE_TOO_LARGE', `text + aad exceed ${GCM_MAX_MESSAGE} bytes`);
  }
}

function one(
  op: 'seal' | 'open',
  key: GcmKey,
  nonce: Uint8Array,
  text: Uint8Array,
  tag: Uint8Array | undefined,
  aad: Uint8Array,
  tagLength: GcmTagLength,
): { status: number; text: number; tag: number } {
  key.check();
  const c = key.core;
  const s = stage(c, aad.length + text.length + 16);
  const descs = s.base;
  const noncePtr = s.base + 32;
  const aadPtr = s.base + STAGING_HEADER;
  const textPtr = aadPtr + aad.length;
  const tagPtr = textPtr + text.length;
  const u8 = c.u8();
  u8.set(nonce, noncePtr);
  u8.set(aad, aadPtr);
  u8.set(text, textPtr);
  if (tag) u8.set(tag, tagPtr);
  writeGcmDescriptor(c.dv(), descs, 0, {
    text: textPtr,
    textLen: text.length,
    aad: aadPtr,
    aadLen: aad.length,
    nonce: noncePtr,
    tag: tagPtr,
    tagLen: tagLength,
  });
  const ex = gcmExports(c);
  const scratch = threadScratch(c);
  if (op === 'seal') ex.gcm_seal_batch(key.ctx, descs, 1, scratch);
  else ex.gcm_open_batch(key.ctx, descs, 1, scratch);
  return { status: gcmStatus(c.dv(), descs, 0), text: textPtr, tag: tagPtr };
}

/** Encrypts one message: returns ciphertext || tag (tagLength bytes). */
export function seal(
  key: GcmKey,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array = EMPTY,
  tagLength: GcmTagLength = 16,
): Buffer {
  checkMessageArgs(nonce, plaintext, aad, tagLength);
  const r = one('seal', key, nonce, plaintext, undefined, aad, tagLength);
  if (r.status !== GCM_OK) throw statusError(r.status);
  return Buffer.from(key.core.u8().slice(r.text, r.tag + tagLength));
}

/** Decrypts ciphertext || tag; throws ERR_AUTH_FAILED when the tag does not match. */
export function open(
  key: GcmKey,
  nonce: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array = EMPTY,
  tagLength: GcmTagLength = 16,
): Buffer {
  checkMessageArgs(nonce, sealed, aad, tagLength);
  if (sealed.length < tagLength) {
    throw new VxError(
      'ERR_CIPHERTEXT_TOO_SHORT',
      `sealed message of ${sealed.length} bytes has no ${tagLength}-byte tag`,
    );
  }
  const ct = sealed.subarray(0, sealed.length - tagLength);
  const tag = sealed.subarray(sealed.length - tagLength);
  const r = one('open', key, nonce, ct, tag, aad, tagLength);
  if (r.status !== GCM_OK) throw statusError(r.status);
  return Buffer.from(key.core.u8().slice(r.text, r.text + ct.length));
}

/** The VxError for a non-OK descriptor status. */
export function statusError(status: number): VxError {
  switch (status) {
    case GCM_ERR_AUTH:
      return new VxError('ERR_AUTH_FAILED', 'AES-GCM authentication failed (tag mismatch)');
    case GCM_ERR_TAG_LEN:
      return new VxError('ERR_BAD_TAG_LENGTH', 'tag length must be 16, 12 or 8');
    default:
      return new VxError('ERR_GCM_STATUS', `unexpected AES-GCM status ${status}`);
  }
}
