// ESP (RFC 4303, transport mode) with AES-GCM (RFC 4106) for packet batches: the host side of
// assembly/esp.ts.
//
// Owns one ESP context in linear memory (SA table, peer -> outbound SA map, replay windows,
// counters) and a pool of GCM key contexts for its SAs, all allocated by the constructor: adding
// an SA allocates nothing, so the context can be driven from a worker (Esp.attach), which must
// never allocate. SAs that carry the same key and salt share one key slot (GCM context + 64-bit IV
// counter), so a nonce (salt || IV) is never used twice under a key, even across SAs; the
// counter's value survives the SA's removal (a re-added key resumes it). Keys are never kept in
// JS: gcm_init expands them in WASM memory and zeroes the raw copy; a slot no SA uses is wiped.
//
// `seal`/`open` are one call into WASM per batch over DESC_* descriptors (src/io/batch.ts
// PacketBatch): verdicts and drop reasons per packet, counted per reason. The context is
// single-writer: ONE Esp object (the creator, or the one that attached) runs its batches and
// adds/removes SAs between them.
import { createHash } from 'node:crypto';
import {
  DESC_SIZE,
  DROP_AUTH,
  DROP_BAD_PADDING,
  DROP_BAD_SPI,
  DROP_MALFORMED,
  DROP_NO_SA,
  DROP_REASONS,
  DROP_REPLAY,
  DROP_SEQ_EXHAUSTED,
  DROP_TRUNCATED,
  ESP_CHUNK,
  ESP_CNT_DROPS,
  ESP_CNT_OPENED,
  ESP_CNT_OPENED_BYTES,
  ESP_CNT_SEALED,
  ESP_CNT_SEALED_BYTES,
  ESP_F_BY_SA,
  ESP_F_PULL_UDP,
  ESP_F_PUSH_UDP,
  ESP_F_STAGE,
  ESP_PUSH,
  ESP_SA_F_ESN,
  ESP_SA_F_OUT,
  ESP_SA_F_USED,
  ESP_SA_SIZE,
  ESP_SALT_LEN,
  ESPX_CNT,
  ESPX_MAX_PEERS,
  ESPX_MAX_SAS,
  ESPX_SAS,
  ESPX_SIZE,
  ESPX_STAGE,
  GCM_CTX_KEY,
  GCM_CTX_SIZE,
  GCM_OK,
  SA_AUTH_FAIL,
  SA_BYTES,
  SA_FLAGS,
  SA_GCM,
  SA_ICV,
  SA_IVCTR,
  SA_PACKETS,
  SA_REPLAY,
  SA_SALT,
  SA_SEQ,
  SA_SPI,
  ST_INVALID_PEER,
  ST_INVALID_SA,
  ST_SA_TABLE_FULL,
  ST_SPI_EXISTS,
} from '../../assembly/constants.js';
import { VxError } from '../errors.js';
import { core, type WasmCore } from '../wasm/module.js';
import type { GcmExports, GcmTagLength } from './gcm.js';

export type EspDirection = 'in' | 'out';

export interface EspSaOptions {
  /** Security Parameters Index, 256..2^32-1 (0 and 1..255 are reserved, RFC 4303 2.1). */
  spi: number;
  /** AES key: 16 bytes (AES-128, Docker's choice) or 32 (AES-256). */
  key: Uint8Array;
  /** The RFC 4106 salt: 4 bytes, part of the keying material (the nonce is salt || IV). */
  salt: Uint8Array;
  /** ICV (tag) length; default 8 like Docker's overlay. */
  icvLen?: GcmTagLength;
  /** 'in' decrypts packets carrying this SPI; 'out' encrypts packets bound to it (bindPeer). */
  dir: EspDirection;
  /**
   * 64-bit extended sequence numbers (RFC 4303 2.2.1): the AAD carries the 64-bit number, the wire
   * its low half; an SA never runs out of numbers. Both ends must agree. Default false (Wireshark
   * 4.0 decrypts only 32-bit sequence numbers).
   */
  esn?: boolean;
  /**
   * Outbound: the last sequence number already sent (default 0, so the first packet is 1);
   * inbound: the right edge of the replay window (default 0). For resuming an SA.
   */
  seq?: number;
}

export interface EspSaInfo {
  index: number;
  spi: number;
  dir: EspDirection;
  icvLen: number;
  esn: boolean;
  /** Outbound: last sequence number sent; inbound: highest authenticated one (right edge of the window). */
  seq: number;
  packets: number;
  bytes: number;
  authFailed: number;
  replayed: number;
}

export interface EspCounters {
  sealed: number;
  sealedBytes: number;
  opened: number;
  openedBytes: number;
  /** Drops by DROP_* reason number (DROP_BAD_SPI, DROP_REPLAY, DROP_AUTH, DROP_TRUNCATED, ...). */
  drops: number[];
}

export interface EspOptions {
  /** SA slots (default 64: e.g. 3 keys x 2 directions x 10 peers). */
  maxSas?: number;
  /** Distinct key + salt pairs live at once (default maxSas; 11 KiB of WASM memory each). */
  maxKeys?: number;
  /** Peer indexes the outbound map covers (default 1024; use the datapath's maxPeers). */
  maxPeers?: number;
  core?: WasmCore;
}

export interface EspSealOptions {
  /** DESC_ARG holds an SA index instead of a peer index. */
  bySa?: boolean;
  /**
   * The descriptors hold VXLAN packets (what Datapath encap leaves without the raw underlay): push
   * the UDP header (ports 4789, checksum 0) in front before sealing. Pairs with open's pullUdp.
   */
  pushUdp?: boolean;
}

export interface EspOpenOptions {
  /** Also check the inner UDP header (length, port 4789) and move DESC_PTR past it, to the VXLAN header. */
  pullUdp?: boolean;
}

/** Names of the drop reasons ESP uses (the index of EspCounters.drops). */
export const ESP_DROP_NAMES: Readonly<Record<number, string>> = {
  [DROP_TRUNCATED]: 'truncated',
  [DROP_MALFORMED]: 'malformed',
  [DROP_AUTH]: 'auth-failed',
  [DROP_REPLAY]: 'replay',
  [DROP_BAD_SPI]: 'bad-spi',
  [DROP_BAD_PADDING]: 'bad-padding',
  [DROP_NO_SA]: 'no-sa',
  [DROP_SEQ_EXHAUSTED]: 'seq-exhausted',
};

/** What another thread needs to run (and control) this ESP context on the same memory. */
export interface EspHandle {
  ctx: number;
  maxSas: number;
  maxPeers: number;
  maxKeys: number;
  /** maxKeys GCM key contexts (GCM_CTX_SIZE each), then maxKeys u64 IV counters. */
  keyPool: number;
}

interface EspExports {
  esp_setup(ectx: number): number;
  esp_sa_add(ectx: number): number;
  esp_sa_remove(ectx: number, idx: number): number;
  esp_bind(ectx: number, peer: number, sa: number): number;
  esp_seal_batch(ectx: number, descs: number, n: number, flags: number): number;
  esp_open_batch(ectx: number, descs: number, n: number, flags: number): number;
}

/** A key + salt in use: its slot of the key pool (GCM context + IV counter), shared by its SAs. */
interface KeyEntry {
  slot: number;
  refs: number;
}

const NONE = 0xffffffff;

/**
 * The most bytes ESP adds to a UDP datagram: header + IV (16), padding (up to 3), pad length and
 * next header (2), ICV; plus a UDP header (8) for RFC 3948 encapsulation. For the overlay MTU:
 * underlay MTU - VXLAN_MTU_OVERHEAD - espOverhead(...) (proto 50, ICV 8: 29).
 */
export function espOverhead(o: { icvLen?: GcmTagLength; udpEncap?: boolean } = {}): number {
  return ESP_PUSH + 3 + 2 + (o.icvLen ?? 8) + (o.udpEncap ? 8 : 0);
}

export class Esp {
  readonly core: WasmCore;
  /** Address of the ESP context (ESPX_* layout). */
  readonly ctx: number;
  readonly maxSas: number;
  readonly maxPeers: number;
  readonly maxKeys: number;
  /** maxKeys GCM key contexts, then maxKeys u64 IV counters. */
  readonly #keyPool: number;
  readonly #x: EspExports;
  /** By fingerprint of key || salt: the live keys. */
  readonly #keys = new Map<string, KeyEntry>();
  /** By fingerprint: IV counters of keys no SA uses any more, resumed if the key comes back. */
  readonly #retiredIv = new Map<string, bigint>();
  readonly #freeSlots: number[] = [];
  /** SA index -> fingerprint of its key. */
  readonly #saKey = new Map<number, string>();

  /**
   * Allocates the context, its tables and the key pool (never freed). With `attach` (see
   * Esp.attach) it allocates nothing and uses that context instead.
   */
  constructor(opts: EspOptions & { attach?: EspHandle } = {}) {
    this.core = opts.core ?? core();
    this.#x = this.core.exports as unknown as EspExports;
    let h = opts.attach;
    if (!h) {
      const maxSas = opts.maxSas ?? 64;
      const maxPeers = opts.maxPeers ?? 1024;
      const maxKeys = opts.maxKeys ?? maxSas;
      checkInt('options.maxSas', maxSas, 1, 65536);
      checkInt('options.maxPeers', maxPeers, 0, 65536);
      checkInt('options.maxKeys', maxKeys, 1, 65536);
      const ctx = this.core.alloc(ESPX_SIZE);
      const dv = this.core.dv();
      dv.setUint32(ctx + ESPX_MAX_SAS, maxSas, true);
      dv.setUint32(ctx + ESPX_MAX_PEERS, maxPeers, true);
      if (this.#x.esp_setup(ctx) === 0) throw new VxError('ERR_INVALID_ARG', 'esp_setup refused the config');
      h = { ctx, maxSas, maxPeers, maxKeys, keyPool: this.core.alloc(maxKeys * (GCM_CTX_SIZE + 8)) };
    }
    this.ctx = h.ctx;
    this.maxSas = h.maxSas;
    this.maxPeers = h.maxPeers;
    this.maxKeys = h.maxKeys;
    this.#keyPool = h.keyPool;
    for (let i = this.maxKeys - 1; i >= 0; i--) this.#freeSlots.push(i);
  }

  /**
   * The context of `h` over `wasm` (a worker's instance on the same shared memory); allocates
   * nothing. The attached object becomes the context's single writer: it runs the batches and
   * changes the SAs; the creator must not use it any more. Attach before any SA is added.
   */
  static attach(h: EspHandle, wasm: WasmCore): Esp {
    return new Esp({ core: wasm, attach: h });
  }

  /** What Esp.attach needs (structured-cloneable). */
  handle(): EspHandle {
    const { ctx, maxSas, maxPeers, maxKeys } = this;
    return { ctx, maxSas, maxPeers, maxKeys, keyPool: this.#keyPool };
  }

  /** Adds an SA; returns its index (what bindPeer and `bySa` seals take, and DESC_ARG after open). */
  addSa(o: EspSaOptions): number {
    checkInt('spi', o.spi, 0, 0xffffffff);
    if (o.spi < 256) throw new VxError('ERR_BAD_SPI', `spi ${o.spi} is reserved (0..255)`);
    if (o.dir !== 'in' && o.dir !== 'out') throw new VxError('ERR_INVALID_ARG', `dir must be "in" or "out"`);
    if (!(o.salt instanceof Uint8Array) || o.salt.length !== ESP_SALT_LEN) {
      throw new VxError('ERR_BAD_SALT_LENGTH', `salt must be ${ESP_SALT_LEN} bytes, got ${o.salt?.length}`);
    }
    const icv = o.icvLen ?? 8;
    if (icv !== 8 && icv !== 12 && icv !== 16) {
      throw new VxError('ERR_BAD_TAG_LENGTH', `icvLen must be 8, 12 or 16, got ${icv}`);
    }
    const seq = o.seq ?? 0;
    checkInt('seq', seq, 0, o.esn ? Number.MAX_SAFE_INTEGER : 0xffffffff);
    const fp = this.#keyRef(o.key, o.salt);
    const entry = this.#keys.get(fp) as KeyEntry;
    const c = this.core;
    const dv = c.dv();
    const rec = dv.getUint32(this.ctx + ESPX_STAGE, true);
    dv.setUint32(rec + SA_SPI, o.spi, true);
    dv.setUint32(rec + SA_FLAGS, (o.dir === 'out' ? ESP_SA_F_OUT : 0) | (o.esn ? ESP_SA_F_ESN : 0), true);
    dv.setUint32(rec + SA_ICV, icv, true);
    dv.setUint32(rec + SA_GCM, this.#slotCtx(entry.slot), true);
    c.u8().set(o.salt, rec + SA_SALT);
    dv.setUint32(rec + SA_IVCTR, this.#slotIv(entry.slot), true);
    dv.setBigUint64(rec + SA_SEQ, BigInt(seq), true);
    const r = this.#x.esp_sa_add(this.ctx);
    if (r < 0) {
      this.#keyUnref(fp);
      if (-r === ST_SPI_EXISTS) throw new VxError('ERR_SPI_IN_USE', `an inbound SA with spi ${o.spi} exists`);
      if (-r === ST_SA_TABLE_FULL)
        throw new VxError('ERR_SA_TABLE_FULL', `all ${this.maxSas} SA slots are in use`);
      throw new VxError('ERR_WASM_STATUS', `esp_sa_add: status ${-r}`);
    }
    this.#saKey.set(r, fp);
    return r;
  }

  /** Removes SA `index` (peers bound to it are unbound); wipes its key when no SA uses it. Can run twice. */
  removeSa(index: number): void {
    const fp = this.#saKey.get(index);
    if (fp === undefined) return;
    const st = this.#x.esp_sa_remove(this.ctx, index);
    if (st === ST_INVALID_SA) throw new VxError('ERR_SA_NOT_FOUND', `no SA ${index}`);
    this.#saKey.delete(index);
    this.#keyUnref(fp);
  }

  /** The index of the live SA with `spi` in direction `dir`, or undefined. */
  findSa(spi: number, dir: EspDirection): number | undefined {
    for (const i of this.#saKey.keys()) {
      const s = this.sa(i);
      if (s.spi === spi && s.dir === dir) return i;
    }
    return undefined;
  }

  /** Packets sealed for datapath peer `peer` use outbound SA `sa` (null: none, they drop as DROP_NO_SA). */
  bindPeer(peer: number, sa: number | null): void {
    const st = this.#x.esp_bind(this.ctx, peer >>> 0, sa === null ? NONE : sa >>> 0);
    if (st === ST_INVALID_PEER)
      throw new VxError('ERR_INVALID_PEER', `peer ${peer} is outside 0..${this.maxPeers - 1}`);
    if (st === ST_INVALID_SA) throw new VxError('ERR_SA_NOT_FOUND', `SA ${sa} is not a live outbound SA`);
  }

  /**
   * Seals the VERDICT_SEND descriptors of the batch in place (see assembly/esp.ts): in, the UDP
   * datagram; out, the ESP packet (DESC_PTR moved back 16 bytes). Returns how many were sealed;
   * the others that were SEND became VERDICT_DROP with DESC_ARG = DROP_NO_SA / DROP_SEQ_EXHAUSTED.
   */
  seal(descs: number, n: number, opts: EspSealOptions = {}): number {
    this.#checkBatch(descs, n);
    const flags = (opts.bySa ? ESP_F_BY_SA : 0) | (opts.pushUdp ? ESP_F_PUSH_UDP : 0);
    return this.#run(() => this.#x.esp_seal_batch(this.ctx, descs, n, flags));
  }

  /**
   * Like seal but stops before the GCM step (batches of at most ESP_CHUNK): the headers, sequence
   * numbers and IVs are assigned, the payload is still plaintext. Returns the number staged; the
   * caller MUST then run esp_gcm_staged over 0..staged (possibly in slices on other threads, see
   * src/crypto/esp-split.ts) before the next call on this context.
   */
  sealStaged(descs: number, n: number, opts: EspSealOptions = {}): number {
    this.#checkBatch(descs, n);
    if (n > ESP_CHUNK)
      throw new VxError('ERR_INVALID_ARG', `a staged seal takes at most ${ESP_CHUNK} descriptors`);
    const flags = ESP_F_STAGE | (opts.bySa ? ESP_F_BY_SA : 0) | (opts.pushUdp ? ESP_F_PUSH_UDP : 0);
    return this.#run(() => this.#x.esp_seal_batch(this.ctx, descs, n, flags));
  }

  /**
   * Opens every descriptor of the batch in place: VERDICT_LOCAL (DESC_ARG = SA index, DESC_PTR/LEN =
   * the UDP datagram or, with pullUdp, the VXLAN header on) or VERDICT_DROP with the reason.
   * Returns how many passed.
   */
  open(descs: number, n: number, opts: EspOpenOptions = {}): number {
    this.#checkBatch(descs, n);
    return this.#run(() => this.#x.esp_open_batch(this.ctx, descs, n, opts.pullUdp ? ESP_F_PULL_UDP : 0));
  }

  sa(index: number): EspSaInfo {
    const dv = this.core.dv();
    if (!Number.isInteger(index) || index < 0 || index >= this.maxSas) {
      throw new VxError('ERR_SA_NOT_FOUND', `no SA ${index}`);
    }
    const p = dv.getUint32(this.ctx + ESPX_SAS, true) + index * ESP_SA_SIZE;
    const flags = dv.getUint32(p + SA_FLAGS, true);
    if (!(flags & ESP_SA_F_USED)) throw new VxError('ERR_SA_NOT_FOUND', `no SA ${index}`);
    const u64 = (f: number) => Number(dv.getBigUint64(p + f, true));
    return {
      index,
      spi: dv.getUint32(p + SA_SPI, true),
      dir: flags & ESP_SA_F_OUT ? 'out' : 'in',
      icvLen: dv.getUint32(p + SA_ICV, true),
      esn: (flags & ESP_SA_F_ESN) !== 0,
      seq: u64(SA_SEQ),
      packets: u64(SA_PACKETS),
      bytes: u64(SA_BYTES),
      authFailed: u64(SA_AUTH_FAIL),
      replayed: u64(SA_REPLAY),
    };
  }

  /** Indexes of the live SAs. */
  sas(): number[] {
    return [...this.#saKey.keys()].sort((a, b) => a - b);
  }

  counters(): EspCounters {
    const dv = this.core.dv();
    const b = dv.getUint32(this.ctx + ESPX_CNT, true);
    const u = (f: number) => Number(dv.getBigUint64(b + f, true));
    const drops: number[] = [];
    for (let r = 0; r < DROP_REASONS; r++) drops.push(u(ESP_CNT_DROPS + 8 * r));
    return {
      sealed: u(ESP_CNT_SEALED),
      sealedBytes: u(ESP_CNT_SEALED_BYTES),
      opened: u(ESP_CNT_OPENED),
      openedBytes: u(ESP_CNT_OPENED_BYTES),
      drops,
    };
  }

  /** Removes every SA (keys wiped). */
  close(): void {
    for (const i of [...this.#saKey.keys()]) this.removeSa(i);
  }

  #slotCtx(slot: number): number {
    return this.#keyPool + slot * GCM_CTX_SIZE;
  }

  #slotIv(slot: number): number {
    return this.#keyPool + this.maxKeys * GCM_CTX_SIZE + slot * 8;
  }

  /** The key slot for key + salt (shared, or a free one expanded now); returns its fingerprint. */
  #keyRef(key: Uint8Array, salt: Uint8Array): string {
    if (!(key instanceof Uint8Array) || (key.length !== 16 && key.length !== 32)) {
      throw new VxError('ERR_BAD_KEY_LENGTH', `key must be 16 or 32 bytes, got ${key?.length}`);
    }
    const fp = createHash('sha256').update('vxnet-esp-key').update(key).update(salt).digest('hex');
    let e = this.#keys.get(fp);
    if (!e) {
      const slot = this.#freeSlots.pop();
      if (slot === undefined)
        throw new VxError('ERR_KEY_TABLE_FULL', `all ${this.maxKeys} key slots are in use`);
      const ctx = this.#slotCtx(slot);
      this.core.u8().set(key, ctx + GCM_CTX_KEY);
      if ((this.core.exports as unknown as GcmExports).gcm_init(ctx, key.length) !== GCM_OK) {
        this.#freeSlots.push(slot);
        throw new VxError('ERR_BAD_KEY_LENGTH', 'key must be 16 or 32 bytes');
      }
      this.core.dv().setBigUint64(this.#slotIv(slot), this.#retiredIv.get(fp) ?? 0n, true);
      this.#retiredIv.delete(fp);
      e = { slot, refs: 0 };
      this.#keys.set(fp, e);
    }
    e.refs++;
    return fp;
  }

  /** Drops one SA's reference; the last one wipes the key slot and keeps its IV counter's value. */
  #keyUnref(fp: string): void {
    const e = this.#keys.get(fp);
    if (!e) return;
    e.refs--;
    if (e.refs > 0) return;
    this.#retiredIv.set(fp, this.core.dv().getBigUint64(this.#slotIv(e.slot), true));
    (this.core.exports as unknown as GcmExports).gcm_wipe(this.#slotCtx(e.slot), GCM_CTX_SIZE);
    this.#keys.delete(fp);
    this.#freeSlots.push(e.slot);
  }

  #checkBatch(descs: number, n: number): void {
    checkInt('n', n, 0, 0xffffffff);
    const size = this.core.memory.buffer.byteLength;
    if (!Number.isInteger(descs) || descs <= 0 || descs + n * DESC_SIZE > size) {
      throw new VxError('ERR_INVALID_ARG', `descs ${descs} (+${n} descriptors) is outside WASM memory`);
    }
  }

  #run(f: () => number): number {
    try {
      return f() >>> 0;
    } catch (cause) {
      throw new VxError('ERR_OUT_OF_BOUNDS', 'an ESP descriptor points outside WASM memory', { cause });
    }
  }
}

function checkInt(name: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new VxError('ERR_INVALID_ARG', `${name} must be an integer in ${min}..${max}, got ${v}`);
  }
}
