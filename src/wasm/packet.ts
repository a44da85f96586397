// The host side of the per-packet primitives in assembly/checksum.ts, parse.ts and outer.ts.
//
// Owns: one region of parse records (PARSE_SIZE bytes per descriptor) and one outer-header config
// struct (OUTER_SIZE bytes), carved out once per `PacketCore`. Every method takes a descriptor array
// (`descs`, `n`: the format of assembly/constants.ts DESC_*, e.g. a `PacketBatch` from src/io) and
// makes ONE call into WASM for the whole batch; results stay in linear memory (descriptors and
// records) and are decoded on demand, so the hot path allocates nothing. Per-packet failures are
// integer statuses in the batch, not exceptions: `parseError()` turns one into a VxError with a
// stable code when a caller wants to throw. Views are fetched per call because memory may grow.
import {
  CSUM_V_BAD,
  CSUM_V_IP_BAD,
  CSUM_V_IP_OK,
  CSUM_V_L4_BAD,
  CSUM_V_L4_NONE,
  CSUM_V_L4_OK,
  DESC_AUX,
  DESC_AUX2,
  DESC_SIZE,
  DROP_MALFORMED,
  DROP_TRUNCATED,
  DROP_VXLAN_FLAGS,
  DROP_VXLAN_RESERVED,
  OUTER_F_DF,
  OUTER_F_UDP_CSUM,
  OUTER_FLAGS,
  OUTER_PORT_MAX,
  OUTER_PORT_MAX_DEFAULT,
  OUTER_PORT_MIN,
  OUTER_PORT_MIN_DEFAULT,
  OUTER_SIZE,
  OUTER_SRC_IP,
  OUTER_TOS,
  OUTER_TTL,
  OUTER_TTL_DEFAULT,
  PARSE_ARP_OP,
  PARSE_DPORT,
  PARSE_ETHERTYPE,
  PARSE_FLAGS,
  PARSE_FRAG_OFF,
  PARSE_L3_LEN,
  PARSE_L3_OFF,
  PARSE_L4_OFF,
  PARSE_L4_PROTO,
  PARSE_OK,
  PARSE_PAYLOAD_LEN,
  PARSE_PAYLOAD_OFF,
  PARSE_SIZE,
  PARSE_SPORT,
  PARSE_STATUS,
  PARSE_VLAN,
  PARSE_VLAN_OUTER,
} from '../../assembly/constants.js';
import { VxError } from '../errors.js';
import { core, type WasmCore } from './module.js';

/** The WASM exports this module calls (see assembly/index.ts). */
interface PacketExports {
  csum_batch(descs: number, n: number): void;
  csum_partial_at(p: number, len: number, sum: number): number;
  csum_replace16(check: number, old: number, next: number): number;
  csum_replace32(check: number, old: number, next: number): number;
  csum_verify_batch(descs: number, n: number, recs: number): number;
  parse_batch(descs: number, n: number, out: number): number;
  outer_v4_batch(descs: number, n: number, cfg: number): number;
  vxlan_pull_batch(descs: number, n: number): number;
}

/** One frame's parse record, decoded. Offsets are from the frame's first byte; 0 = not reached. */
export interface ParsedFrame {
  /** PARSE_OK (0), DROP_TRUNCATED or DROP_MALFORMED: why the parser stopped. */
  status: number;
  /** PARSE_F_* bits: the headers found whole. */
  flags: number;
  ethertype: number;
  vlan: number;
  vlanOuter: number;
  l3Offset: number;
  l3Length: number;
  l4Proto: number;
  l4Offset: number;
  payloadOffset: number;
  payloadLength: number;
  srcPort: number;
  dstPort: number;
  arpOp: number;
  fragOffset: number;
}

/** Outer IPv4/UDP/VXLAN options for `encapV4`. */
export interface OuterOptions {
  /** Local underlay IPv4 address (dotted quad). */
  source: string;
  /** Outer TTL, 1..255 (default 64). */
  ttl?: number;
  /** Outer TOS byte, 0..255 (default 0). */
  tos?: number;
  /** Set Don't Fragment (default true). */
  dontFragment?: boolean;
  /** Compute the outer UDP checksum (default false: 0, as Linux's vxlan sends by default). */
  udpChecksum?: boolean;
  /** UDP source-port range [min, max) for the flow hash (default [32768, 61000], Linux's). */
  sourcePorts?: readonly [number, number];
}

export interface PacketCoreOptions {
  /** Descriptors per batch this core handles at most (default 64). */
  capacity?: number;
  /** The WASM instance (default: the main thread's `core()`). */
  wasm?: WasmCore;
}

/** The error a non-OK parse status stands for (undefined for PARSE_OK). Codes are in docs/ERRORS.md. */
export function parseError(status: number, what = 'frame'): VxError | undefined {
  if (status === PARSE_OK) return undefined;
  if (status === DROP_TRUNCATED) {
    return new VxError('ERR_PACKET_TRUNCATED', `${what} is shorter than the headers it announces`);
  }
  if (status === DROP_MALFORMED) {
    return new VxError('ERR_PACKET_MALFORMED', `${what} has a header field that cannot be valid`);
  }
  return new VxError('ERR_PACKET_STATUS', `${what}: unknown parse status ${status}`);
}

/** The error a VXLAN header DROP_* reason (DESC_ARG after `pullVxlan`) stands for. */
export function vxlanError(reason: number): VxError {
  if (reason === DROP_TRUNCATED)
    return new VxError('ERR_PACKET_TRUNCATED', 'VXLAN header shorter than 8 bytes');
  if (reason === DROP_VXLAN_FLAGS) {
    return new VxError('ERR_VXLAN_FLAGS', 'VXLAN flags other than I (0x08), or I missing');
  }
  if (reason === DROP_VXLAN_RESERVED)
    return new VxError('ERR_VXLAN_RESERVED', 'VXLAN reserved bits are not zero');
  return new VxError('ERR_PACKET_STATUS', `unknown VXLAN drop reason ${reason}`);
}

/** What CSUM_V_* bits (the result of `verifyChecksums` per descriptor) say, decoded. */
export function checksumVerdict(bits: number): { ip?: boolean; l4?: boolean; l4Absent: boolean } {
  return {
    ...(bits & (CSUM_V_IP_OK | CSUM_V_IP_BAD) ? { ip: (bits & CSUM_V_IP_OK) !== 0 } : {}),
    ...(bits & (CSUM_V_L4_OK | CSUM_V_L4_BAD) ? { l4: (bits & CSUM_V_L4_OK) !== 0 } : {}),
    l4Absent: (bits & CSUM_V_L4_NONE) !== 0,
  };
}

function intIn(name: string, v: number, lo: number, hi: number): number {
  if (!Number.isInteger(v) || v < lo || v > hi) {
    throw new VxError('ERR_INVALID_ARG', `options.${name} must be an integer in ${lo}..${hi}, got ${v}`);
  }
  return v;
}

function ipv4Bytes(name: string, text: string): number[] {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  const q = m ? m.slice(1).map(Number) : [];
  if (q.length !== 4 || q.some((x) => x > 255)) {
    throw new VxError('ERR_INVALID_ADDRESS', `options.${name} must be an IPv4 address, got "${text}"`);
  }
  return q;
}

/** Checksums, parsing and outer-header build over descriptor batches, one WASM call per batch. */
export class PacketCore {
  readonly capacity: number;
  /** Address of the parse records (record i at records + i * PARSE_SIZE). */
  readonly records: number;
  /** Address of the outer-header config struct (OUTER_* layout). */
  readonly outerConfig: number;
  readonly wasm: WasmCore;
  readonly #x: PacketExports;

  constructor(opts: PacketCoreOptions = {}) {
    this.capacity = opts.capacity ?? 64;
    intIn('capacity', this.capacity, 1, 65536);
    this.wasm = opts.wasm ?? core();
    this.#x = this.wasm.exports as unknown as PacketExports;
    this.records = this.wasm.alloc(this.capacity * PARSE_SIZE);
    this.outerConfig = this.wasm.alloc(OUTER_SIZE);
    this.configureOuter({ source: '0.0.0.0' });
  }

  #check(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.capacity) {
      throw new VxError('ERR_INVALID_ARG', `batch size must be an integer in 0..${this.capacity}, got ${n}`);
    }
  }

  /** Writes the Internet checksum of each packet (memory order, as `load<u16>` gives) into DESC_AUX. */
  checksum(descs: number, n: number): void {
    this.#check(n);
    this.#x.csum_batch(descs, n);
  }

  /** The checksum `checksum()` left in descriptor i, as the two wire bytes read big-endian. */
  checksumOf(descs: number, i: number): number {
    const v = this.wasm.dv().getUint16(descs + i * DESC_SIZE + DESC_AUX, true);
    return ((v & 0xff) << 8) | (v >> 8);
  }

  /** Parses each packet into its record; returns how many parsed with PARSE_OK. */
  parse(descs: number, n: number): number {
    this.#check(n);
    return this.#x.parse_batch(descs, n, this.records);
  }

  /** Decodes record i of the last `parse()` (allocates: for the control plane and tests). */
  record(i: number): ParsedFrame {
    const dv = this.wasm.dv();
    const r = this.records + i * PARSE_SIZE;
    const u = (off: number) => dv.getUint32(r + off, true);
    return {
      status: u(PARSE_STATUS),
      flags: u(PARSE_FLAGS),
      ethertype: u(PARSE_ETHERTYPE),
      vlan: u(PARSE_VLAN),
      vlanOuter: u(PARSE_VLAN_OUTER),
      l3Offset: u(PARSE_L3_OFF),
      l3Length: u(PARSE_L3_LEN),
      l4Proto: u(PARSE_L4_PROTO),
      l4Offset: u(PARSE_L4_OFF),
      payloadOffset: u(PARSE_PAYLOAD_OFF),
      payloadLength: u(PARSE_PAYLOAD_LEN),
      srcPort: u(PARSE_SPORT),
      dstPort: u(PARSE_DPORT),
      arpOp: u(PARSE_ARP_OP),
      fragOffset: u(PARSE_FRAG_OFF),
    };
  }

  /**
   * Verifies the IPv4 header and UDP/TCP checksums of packets `parse()` just parsed; writes CSUM_V_*
   * bits into DESC_AUX2 (decode with `checksumVerdict`). Returns how many had no bad checksum.
   */
  verifyChecksums(descs: number, n: number): number {
    this.#check(n);
    return this.#x.csum_verify_batch(descs, n, this.records);
  }

  /** The CSUM_V_* bits `verifyChecksums()` left in descriptor i. */
  checksumBits(descs: number, i: number): number {
    return this.wasm.dv().getUint32(descs + i * DESC_SIZE + DESC_AUX2, true);
  }

  /** True when descriptor i's checksum bits include a bad checksum. */
  checksumBad(descs: number, i: number): boolean {
    return (this.checksumBits(descs, i) & CSUM_V_BAD) !== 0;
  }

  /** Sets the outer-header options; validates each, throwing ERR_INVALID_ARG / ERR_INVALID_ADDRESS. */
  configureOuter(opts: OuterOptions): void {
    const src = ipv4Bytes('source', opts.source);
    const ttl = intIn('ttl', opts.ttl ?? OUTER_TTL_DEFAULT, 1, 255);
    const tos = intIn('tos', opts.tos ?? 0, 0, 255);
    const [min, max] = opts.sourcePorts ?? [OUTER_PORT_MIN_DEFAULT, OUTER_PORT_MAX_DEFAULT];
    intIn('sourcePorts[0]', min, 1, 65535);
    intIn('sourcePorts[1]', max, min + 1, 65536);
    const dv = this.wasm.dv();
    const c = this.outerConfig;
    for (let i = 0; i < 4; i++) dv.setUint8(c + OUTER_SRC_IP + i, src[i]!);
    dv.setUint32(c + OUTER_TTL, ttl, true);
    dv.setUint32(c + OUTER_TOS, tos, true);
    const flags = ((opts.dontFragment ?? true) ? OUTER_F_DF : 0) | (opts.udpChecksum ? OUTER_F_UDP_CSUM : 0);
    dv.setUint32(c + OUTER_FLAGS, flags, true);
    dv.setUint32(c + OUTER_PORT_MIN, min, true);
    dv.setUint32(c + OUTER_PORT_MAX, max, true);
  }

  /**
   * Pushes outer IPv4 + UDP + VXLAN (36 bytes) in front of each frame, for VNI DESC_VNI towards the
   * sockaddr_in at DESC_ADDR; DESC_PTR/DESC_LEN then describe the datagram and DESC_AUX holds the
   * inner flow hash. Each frame needs VXLAN_OVERHEAD_V4 bytes of headroom. A frame whose datagram
   * would exceed 65535 bytes gets DESC_LEN 0. Returns how many datagrams were built.
   */
  encapV4(descs: number, n: number): number {
    this.#check(n);
    return this.#x.outer_v4_batch(descs, n, this.outerConfig);
  }

  /**
   * Strips the VXLAN header from UDP payloads (DESC_PTR at the VXLAN header): DESC_VNI gets the
   * VNI and DESC_PTR/DESC_LEN move to the inner frame, with VERDICT_LOCAL; a header that fails the
   * strict RFC 7348 checks gets VERDICT_DROP and its DROP_* reason in DESC_ARG (`vxlanError`).
   * Returns how many passed.
   */
  pullVxlan(descs: number, n: number): number {
    this.#check(n);
    return this.#x.vxlan_pull_batch(descs, n);
  }

  /** The unfolded ones'-complement sum of [p, p+len) (for tools and tests, not per packet). */
  partialSum(p: number, len: number, sum = 0): number {
    return this.#x.csum_partial_at(p, len, sum) >>> 0;
  }

  /** RFC 1624 update of a checksum field after a 16-bit word changed (values in memory order). */
  replace16(check: number, old: number, next: number): number {
    return this.#x.csum_replace16(check, old, next) & 0xffff;
  }

  /** RFC 1624 update of a checksum field after an aligned 32-bit word changed (memory order). */
  replace32(check: number, old: number, next: number): number {
    return this.#x.csum_replace32(check, old >>> 0, next >>> 0) & 0xffff;
  }
}
