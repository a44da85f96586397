// The ESP SAs of one tunnel endpoint, derived from the cluster keys: the glue between the key ring
// (src/daemon/keys.ts) and an Esp table (esp.ts) that a datapath seals and opens with.
//
// Owns the mapping (key id, peer) -> (inbound SA, outbound SA). For every ring key and every peer
// it installs both directions; each direction between two endpoints under one key has its own
// SPI, AES key and salt (deriveSa: HKDF-SHA256 of the cluster key with the key id and both
// addresses), so both ends compute the same SA without any exchange, and no two senders share a
// GCM key. Each peer's traffic is bound to the outbound SA of the primary key; a pending key is
// installed for receiving only. A key that leaves the ring has its SAs removed (keys wiped).
import { hkdfSync } from 'node:crypto';
import { VxError } from '../errors.js';
import type { Esp } from './esp.js';
import type { GcmTagLength } from './gcm.js';

/** The ESP SA parameters of one direction between two tunnel endpoints under one cluster key. */
export interface DerivedSa {
  spi: number;
  key: Buffer;
  salt: Buffer;
}

/**
 * Derives the SA for traffic from `src` to `dst` under cluster key `keyId` (HKDF-SHA256): AES-128
 * key, RFC 4106 salt, and an SPI >= 256 (RFC 4303 reserves 0..255).
 */
export function deriveSa(secret: Uint8Array, keyId: number, src: string, dst: string): DerivedSa {
  const okm = Buffer.from(hkdfSync('sha256', secret, 'vxnet-esp-v1', `${keyId}|${src}|${dst}`, 24));
  return {
    key: okm.subarray(0, 16),
    salt: okm.subarray(16, 20),
    spi: 256 + (okm.readUInt32BE(20) % (0x100000000 - 256)),
  };
}

/** What the key ring hands over (src/daemon/keys.ts AppliedKeys has this shape). */
export interface EspKeySet {
  keys: { id: number; secret: Uint8Array }[];
  primary: number;
}

export interface EspSaManagerOptions {
  esp: Esp;
  /** This endpoint's underlay address (what peers see as the source). */
  local: string;
  /** ICV length (default 8, as Docker). */
  icvLen?: GcmTagLength;
  /** 64-bit extended sequence numbers on every SA (default false: Wireshark 4.0 cannot decrypt them). */
  esn?: boolean;
}

interface PeerSas {
  address: string;
  /** By key id. */
  sas: Map<number, { in: number; out: number }>;
}

export class EspSaManager {
  readonly #o: EspSaManagerOptions;
  #keys: EspKeySet = { keys: [], primary: 0 };
  readonly #peers = new Map<number, PeerSas>();

  constructor(o: EspSaManagerOptions) {
    this.#o = o;
  }

  /** Applies a new key set: SAs for new keys on every peer, removed ones dropped, peers rebound to the primary. */
  setKeys(keys: EspKeySet): void {
    if (keys.keys.length > 0 && !keys.keys.some((k) => k.id === keys.primary)) {
      throw new VxError('ERR_BAD_KEY_RING', `primary key ${keys.primary} is not among the keys`);
    }
    this.#keys = {
      keys: keys.keys.map((k) => ({ id: k.id, secret: Buffer.from(k.secret) })),
      primary: keys.primary,
    };
    for (const [peer, p] of this.#peers) this.#sync(peer, p);
  }

  /** Adds (or moves) datapath peer `peer` at underlay `address`: SAs for every key, bound to the primary. */
  addPeer(peer: number, address: string): void {
    const old = this.#peers.get(peer);
    if (old && old.address !== address) this.removePeer(peer);
    const p = this.#peers.get(peer) ?? { address, sas: new Map() };
    this.#peers.set(peer, p);
    this.#sync(peer, p);
  }

  /** Removes the peer's SAs (and unbinds it). Can run twice. */
  removePeer(peer: number): void {
    const p = this.#peers.get(peer);
    if (!p) return;
    const esp = this.#o.esp;
    esp.bindPeer(peer, null);
    for (const s of p.sas.values()) {
      esp.removeSa(s.in);
      esp.removeSa(s.out);
    }
    this.#peers.delete(peer);
  }

  /** The SPIs in use for `peer` by key id (for diagnostics and tests). */
  spis(peer: number): Map<number, { in: number; out: number }> {
    const p = this.#peers.get(peer);
    const out = new Map<number, { in: number; out: number }>();
    if (!p) return out;
    for (const [id, s] of p.sas)
      out.set(id, { in: this.#o.esp.sa(s.in).spi, out: this.#o.esp.sa(s.out).spi });
    return out;
  }

  #sync(peer: number, p: PeerSas): void {
    const esp = this.#o.esp;
    const { local } = this.#o;
    const want = new Map(this.#keys.keys.map((k) => [k.id, k.secret]));
    for (const [id, s] of p.sas) {
      if (want.has(id)) continue;
      esp.removeSa(s.in);
      esp.removeSa(s.out);
      p.sas.delete(id);
    }
    for (const [id, secret] of want) {
      if (p.sas.has(id)) continue;
      const rx = deriveSa(secret, id, p.address, local);
      const tx = deriveSa(secret, id, local, p.address);
      const icvLen = this.#o.icvLen ?? 8;
      const esn = this.#o.esn ?? false;
      const inIdx = esp.addSa({ ...rx, icvLen, esn, dir: 'in' });
      let outIdx: number;
      try {
        outIdx = esp.addSa({ ...tx, icvLen, esn, dir: 'out' });
      } catch (e) {
        esp.removeSa(inIdx);
        throw e;
      }
      p.sas.set(id, { in: inIdx, out: outIdx });
    }
    const primary = p.sas.get(this.#keys.primary);
    esp.bindPeer(peer, primary ? primary.out : null);
  }
}
