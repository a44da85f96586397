// GcmBatch: a region of linear memory laid out for N messages plus their GCM descriptors.
//
// Owns one region carved out once: the GCMD_* descriptor array, then N fixed slots of
// [nonce 16 | aad `maxAad` | text `maxText` | tag 16]. It is the shape a data path keeps per ring
// (filled in place by I/O), and what tests and bench:crypto use to drive batches; the crypto calls
// themselves take only (descs, n), so packets laid out any other way work the same.
import { GCMD_AAD, GCMD_NONCE, GCMD_SIZE, GCMD_TAG, GCMD_TEXT } from '../../assembly/constants.js';
import { VxError } from '../errors.js';
import { core, type WasmCore } from '../wasm/module.js';
import { type GcmTagLength, gcmStatus, writeGcmDescriptor } from './gcm.js';

export interface GcmBatchOptions {
  /** Number of message slots. */
  slots: number;
  /** Largest text (plaintext/ciphertext) per slot in bytes. */
  maxText: number;
  /** Largest AAD per slot in bytes (default 64). */
  maxAad?: number;
  core?: WasmCore;
}

export interface GcmSlotInput {
  nonce: Uint8Array;
  text: Uint8Array;
  aad?: Uint8Array;
  tag?: Uint8Array;
  tagLength?: GcmTagLength;
}

export class GcmBatch {
  readonly slots: number;
  readonly maxText: number;
  readonly maxAad: number;
  readonly core: WasmCore;
  /** Address of the descriptor array (what sealBatch/openBatch/the pool take). */
  readonly descs: number;
  readonly #slot0: number;
  readonly #stride: number;

  constructor(opts: GcmBatchOptions) {
    const { slots, maxText } = opts;
    const maxAad = opts.maxAad ?? 64;
    for (const [name, v] of [
      ['slots', slots],
      ['maxText', maxText],
      ['maxAad', maxAad],
    ] as const) {
      if (!Number.isInteger(v) || v < 0 || (name === 'slots' && v === 0)) {
        throw new VxError(
          'ERR_INVALID_ARG',
          `options.${name} must be a ${name === 'slots' ? 'positive' : 'non-negative'} integer, got ${v}`,
        );
      }
    }
    this.slots = slots;
    this.maxText = maxText;
    this.maxAad = maxAad;
    this.core = opts.core ?? core();
    this.#stride = (16 + maxAad + maxText + 16 + 15) & ~15;
    const descBytes = (slots * GCMD_SIZE + 63) & ~63;
    this.descs = this.core.alloc(descBytes + slots * this.#stride);
    this.#slot0 = this.descs + descBytes;
  }

  nonceAddr(i: number): number {
    return this.#slot0 + i * this.#stride;
  }
  aadAddr(i: number): number {
    return this.nonceAddr(i) + 16;
  }
  textAddr(i: number): number {
    return this.aadAddr(i) + this.maxAad;
  }

  /** Fills slot i and its descriptor; the tag goes right after the text (ESP layout). */
  set(i: number, m: GcmSlotInput): void {
    const aad = m.aad ?? new Uint8Array(0);
    if (!Number.isInteger(i) || i < 0 || i >= this.slots)
      throw new VxError('ERR_INVALID_ARG', `slot ${i} out of range`);
    if (m.text.length > this.maxText || aad.length > this.maxAad || m.nonce.length !== 12) {
      throw new VxError('ERR_INVALID_ARG', `slot ${i}: text/aad too large or nonce not 12 bytes`);
    }
    const u8 = this.core.u8();
    const text = this.textAddr(i);
    u8.set(m.nonce, this.nonceAddr(i));
    u8.set(aad, this.aadAddr(i));
    u8.set(m.text, text);
    const tagLen = m.tagLength ?? 16;
    if (m.tag) u8.set(m.tag.subarray(0, tagLen), text + m.text.length);
    writeGcmDescriptor(this.core.dv(), this.descs, i, {
      text,
      textLen: m.text.length,
      aad: this.aadAddr(i),
      aadLen: aad.length,
      nonce: this.nonceAddr(i),
      tag: text + m.text.length,
      tagLen,
    });
  }

  /** A view of slot i's text (valid until memory grows). */
  text(i: number, len: number): Uint8Array {
    const p = this.textAddr(i);
    return this.core.u8().subarray(p, p + len);
  }

  /** A view of slot i's tag, which follows a text of `textLen` bytes. */
  tag(i: number, textLen: number, tagLen: number): Uint8Array {
    const p = this.textAddr(i) + textLen;
    return this.core.u8().subarray(p, p + tagLen);
  }

  status(i: number): number {
    return gcmStatus(this.core.dv(), this.descs, i);
  }

  /** Copies every slot and descriptor to `other`, which must have the same shape. */
  copyTo(other: GcmBatch): void {
    if (other.slots !== this.slots || other.maxText !== this.maxText || other.maxAad !== this.maxAad) {
      throw new VxError('ERR_INVALID_ARG', 'batches differ in shape');
    }
    this.core.u8().copyWithin(other.#slot0, this.#slot0, this.#slot0 + this.#slotBytes());
    // Descriptors hold absolute addresses: move them to the other region.
    const dv = this.core.dv();
    const delta = other.#slot0 - this.#slot0;
    for (let i = 0; i < this.slots; i++) {
      const d = this.descs + i * GCMD_SIZE;
      const od = other.descs + i * GCMD_SIZE;
      for (let f = 0; f < GCMD_SIZE; f += 4) {
        const v = dv.getUint32(d + f, true);
        const isAddr = f === GCMD_TEXT || f === GCMD_AAD || f === GCMD_NONCE || f === GCMD_TAG;
        dv.setUint32(od + f, isAddr ? v + delta : v, true);
      }
    }
  }

  /** Saves every slot's bytes into a new region (for benchmarks that reopen the same ciphertexts). */
  snapshot(): number {
    const snap = this.core.alloc(this.#slotBytes());
    this.core.u8().copyWithin(snap, this.#slot0, this.#slot0 + this.#slotBytes());
    return snap;
  }

  /** Puts back the bytes saved by `snapshot()` (one memcpy). */
  restore(snap: number): void {
    this.core.u8().copyWithin(this.#slot0, snap, snap + this.#slotBytes());
  }

  #slotBytes(): number {
    return this.slots * this.#stride;
  }
}
