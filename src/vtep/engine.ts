// The underlay-owning tunnel engine: one UDP socket on the data-path port (plus, for the raw
// underlay, a raw IPv4 sender), one I/O worker, one WASM datapath, and any number of TAP ports,
// each bound to a VNI.
//
// Why one engine per host and not one per tunnel: a host has one data-path port (4789) but several
// overlays, and the kernel delivers every VXLAN datagram to the one socket bound there; the WASM
// datapath already maps VNI -> port. `Vtep` (vtep.ts) is the one-port face of this engine.
//
// Owns, on the main thread: opening the fds (TAPs, sockets), allocating every region in the shared
// WASM memory (the worker never allocates), starting/stopping the I/O worker, and turning API calls
// into control messages. Every change to the tables is applied by the I/O thread (service.ts),
// the tables' single writer, so each mutating method returns a promise that settles once it has
// been applied. Reads (fdb, peers, stats) look at the shared tables directly.
import { EventEmitter } from 'node:events';
import { isIPv4, isIPv6 } from 'node:net';
import {
  DESC_SIZE,
  OUTER_FLAGS,
  OUTER_PORT_MAX,
  OUTER_PORT_MAX_DEFAULT,
  OUTER_PORT_MIN,
  OUTER_PORT_MIN_DEFAULT,
  OUTER_SIZE,
  OUTER_SRC_IP,
  VXLAN_PORT,
} from '../../assembly/constants.js';
import { ESP_DROP_NAMES, Esp, espOverhead } from '../crypto/esp.js';
import type { EspKeySet } from '../crypto/esp-sas.js';
import { EspHelpers, espSplitRegions } from '../crypto/esp-split.js';
import type { GcmTagLength } from '../crypto/gcm.js';
import { VxError } from '../errors.js';
import { PacketBatch } from '../io/batch.js';
import { RawSender } from '../io/raw.js';
import { TapDevice, TSO_MAX_FRAME } from '../io/tap.js';
import { UdpBind } from '../io/udp.js';
import { IoWorker } from '../io/worker.js';
import { Datapath, type DatapathEvent, SCRATCH_RECORDS } from '../wasm/datapath.js';
import { core } from '../wasm/module.js';
import {
  type Counters,
  countersOf,
  DROP_NAMES,
  IO_STATS_BYTES,
  type IoCounters,
  readIoCounters,
} from './counters.js';
import { inNetns } from './netns.js';
import { offloadRegions } from './offload.js';
import type { Control, ControlOp, RemoteRef, ServiceData, ServiceMessage } from './service.js';

export interface EngineOptions {
  /** Local underlay address to bind (and the source of raw-underlay datagrams). Default 0.0.0.0. */
  local?: string;
  /** Network namespace (/run/netns/NAME) to open the underlay socket(s) in (default: this process's). */
  netns?: string;
  /** Data-path UDP port (default 4789), also the destination port of peers given without one. */
  port?: number;
  /** Learn remote MACs and unknown source peers from received traffic (default false). */
  learning?: boolean;
  /**
   * Answer ARP requests from the neighbour table and never send ARP through the tunnel (default
   * true). Off: ARP is flooded to the remotes like any broadcast.
   */
  arpProxy?: boolean;
  /**
   * Send unicast to MACs missing from the FDB to every peer of the VNI's flood list, as Linux
   * vxlan does with its default (all-zeros) destination (default true). Off: drop it (l2Miss).
   */
  floodUnknown?: boolean;
  /** 'udp' (default): send on the UDP socket; 'raw': WASM builds outer IPv4/UDP, a raw socket sends. */
  underlay?: 'udp' | 'raw';
  /** TAP vnet hdr with TSO in, GRO-style coalescing out, UDP GSO/GRO (default true). */
  offload?: boolean;
  /** FDB capacity (default 65536), peer table size (1024), VNIs (256); see DatapathOptions. */
  fdbCapacity?: number;
  maxPeers?: number;
  maxVnis?: number;
  /** Seconds a learned FDB entry lives without traffic (default 300). */
  ageingSeconds?: number;
  /**
   * Run the I/O thread in SCHED_RR at this priority, 1..99 (default 0: the normal class; needs
   * root or CAP_SYS_NICE). On a busy host it cut the RTT's p99 (not its p50); it never busy-polls.
   */
  realtime?: number;
  /**
   * Open the encrypted underlay: ESP (RFC 4303, AES-GCM per RFC 4106) on its own socket, so ports
   * added with `encrypted` send nothing in cleartext and accept only ESP. Needs `local` (SAs are
   * derived from both endpoints' addresses) and the UDP underlay, and excludes `learning` (a peer
   * learned from traffic would have no SA, and cleartext must never teach an encrypted network's
   * FDB). The keys come from setKeys; until then encrypted traffic drops as noSa.
   */
  encryption?: {
    /** UDP port of ESP in UDP (default 4500; encap 'udp' only). */
    port?: number;
    icvLen?: GcmTagLength;
    maxSas?: number;
    /**
     * 'ip' (default): ESP as IP protocol 50 on a raw socket, 29 bytes of overhead (ICV 8), read and
     * written with recvmmsg/sendmmsg but without UDP GSO/GRO. 'udp': ESP in UDP (RFC 3948) for
     * underlays that drop protocol 50 (NAT, some clouds), 37 bytes, with GSO/GRO.
     */
    encap?: EspEncap;
    /**
     * Helper threads (a Piscina pool) that take slices of big seal batches off the I/O thread,
     * fork-join over shared memory (src/crypto/esp-split.ts). Default 0: on a 2-core host it
     * measured no clear gain (bench/e2e.ts vxnet-cw1 vs vxnet, case encrypted).
     */
    cryptoWorkers?: number;
    /** Smallest seal batch (payload bytes) split across the helpers (default DEFAULT_SPLIT_MIN_BYTES). */
    splitMinBytes?: number;
  };
}

/** How ESP crosses the underlay: as IP protocol 50, or in UDP (RFC 3948). */
export type EspEncap = 'ip' | 'udp';

function helperStats(h: EspHelpers | undefined) {
  const s = h?.stats() ?? { slices: 0, failed: 0, inline: 0, lost: 0 };
  return { helperSlices: s.slices, helperFailed: s.failed, helperInline: s.inline, helperLost: s.lost };
}

/**
 * Packets per recvmmsg/sendmmsg on the protocol-50 socket and per seal batch (ESP_CHUNK): without
 * GSO/GRO every packet is a message, so the per-call costs (syscall, WASM call) are spread wider.
 */
const ESP_IP_BATCH = 256;

/** IP protocol number of ESP (RFC 4303). */
const IPPROTO_ESP = 50;

/** Default port of UDP-encapsulated ESP (RFC 3948). */
export const ESP_UDP_PORT = 4500;

export interface PortOptions {
  vni: number;
  /** TAP name (default: the kernel's tapN). */
  name?: string;
  /** TAP MTU (default: the kernel's, 1500). */
  mtu?: number;
  /** Bring the TAP up (default true). */
  up?: boolean;
  /** Make the TAP inside this network namespace (default: this process's). */
  netns?: string;
  /** Send only ESP and drop cleartext VXLAN for this VNI (needs the engine's `encryption`). */
  encrypted?: boolean;
}

export interface Remote {
  address: string;
  /** Default: the engine's data-path port. */
  port?: number;
}

export interface FdbView {
  vni: number;
  mac: string;
  address: string;
  port: number;
  static: boolean;
}

export interface PeerView {
  address: string;
  port: number;
  learned: boolean;
  counters: Counters;
}

export interface EngineStats {
  /** Per VNI: what could be attributed to the VNI's port. */
  vnis: Map<number, Counters>;
  peers: PeerView[];
  /** Every drop by reason, also of datagrams no VNI or peer could be named for. */
  global: Counters;
  io: IoCounters;
  eventsLost: number;
  /** The ESP stage (engines opened with encryption): packets sealed/opened, drops by reason. */
  esp?: EspStats;
}

export interface EspStats {
  sealed: number;
  sealedBytes: number;
  opened: number;
  openedBytes: number;
  drops: Record<string, number>;
  /** Seal-batch slices the crypto helper threads ran (0 without options.encryption.cryptoWorkers). */
  helperSlices: number;
  /** Helper threads that died; the I/O thread took their work back (see src/crypto/esp-split.ts). */
  helperFailed: number;
  /** Slices given to a helper that died before taking them, sealed on the I/O thread instead. */
  helperInline: number;
  /** Seal batches dropped because a helper died while sealing its slice (never half-sealed out). */
  helperLost: number;
}

export type EngineEvent =
  | { type: 'l2miss'; vni: number; mac: string }
  | { type: 'l3miss'; vni: number; ip: string }
  | { type: 'learned'; vni: number; address: string; port: number };

/** Emitted as 'helperFailed' when a crypto helper thread dies (its work moved to the I/O thread). */
export interface HelperFailedEvent {
  index: number;
  error: Error;
}

/** What a port of the engine is. */
export interface TapPort {
  vni: number;
  name: string;
  tap: TapDevice;
  /** The namespace the TAP was made in (undefined: this process's). */
  netns?: string;
}

const SEND_BATCH = 64;

function workerFile(): URL {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`./worker${ext}`, import.meta.url);
}

export class VtepEngine extends EventEmitter {
  readonly local: string;
  readonly port: number;
  readonly family: 4 | 6;
  readonly underlay: 'udp' | 'raw';
  readonly offload: boolean;
  private readonly ports = new Map<number, TapPort>();
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private nextId = 1;
  private closing: Promise<void> | undefined;

  private constructor(
    o: { local: string; port: number; underlay: 'udp' | 'raw'; offload: boolean },
    private readonly dp: Datapath,
    private readonly udp: UdpBind,
    private readonly raw: RawSender | undefined,
    private readonly ioStats: number,
    private worker: IoWorker | undefined,
    private readonly esp:
      | { esp: Esp; udp: UdpBind; icvLen: GcmTagLength; udpEncap: boolean; helpers?: EspHelpers }
      | undefined,
  ) {
    super();
    this.local = o.local;
    this.port = o.port;
    this.family = isIPv4(o.local) ? 4 : 6;
    this.underlay = o.underlay;
    this.offload = o.offload;
  }

  /** Opens the underlay socket(s), allocates the datapath and starts the I/O worker. */
  static async open(o: EngineOptions = {}): Promise<VtepEngine> {
    const local = o.local ?? '0.0.0.0';
    if (!isIPv4(local) && !isIPv6(local)) {
      throw new VxError('ERR_INVALID_ARG', `options.local must be an IPv4 or IPv6 address, got "${local}"`);
    }
    const port = o.port ?? VXLAN_PORT;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new VxError('ERR_INVALID_ARG', `options.port must be an integer in 1..65535, got ${port}`);
    }
    const underlay = o.underlay ?? 'udp';
    if (underlay !== 'udp' && underlay !== 'raw') {
      throw new VxError(
        'ERR_INVALID_ARG',
        `options.underlay must be "udp" or "raw", got "${String(underlay)}"`,
      );
    }
    if (underlay === 'raw' && (!isIPv4(local) || local === '0.0.0.0')) {
      throw new VxError('ERR_RAW_UNDERLAY_V4', 'the raw underlay needs options.local, an IPv4 address');
    }
    const offload = o.offload ?? true;
    const enc = o.encryption;
    if (enc && (underlay !== 'udp' || local === '0.0.0.0' || local === '::')) {
      throw new VxError(
        'ERR_ESP_CONFIG',
        'encryption needs the UDP underlay and options.local (SAs are derived from the addresses)',
      );
    }
    if (enc && o.learning) {
      throw new VxError(
        'ERR_ESP_CONFIG',
        'encryption excludes learning: a learned peer has no SA, and cleartext must not teach the FDB',
      );
    }
    const encap = enc?.encap ?? 'ip';
    if (encap !== 'ip' && encap !== 'udp') {
      throw new VxError(
        'ERR_ESP_CONFIG',
        `options.encryption.encap must be "ip" or "udp", got "${String(encap)}"`,
      );
    }
    if (enc && encap === 'ip' && !isIPv4(local)) {
      throw new VxError(
        'ERR_ESP_CONFIG',
        'ESP as IP protocol 50 needs an IPv4 options.local (encap "udp" for IPv6)',
      );
    }
    const icvLen = enc?.icvLen ?? 8;
    const espPort = enc?.port ?? ESP_UDP_PORT;
    const wasm = core();
    let rawOuter: number | undefined;
    if (underlay === 'raw') {
      rawOuter = wasm.alloc(OUTER_SIZE);
      const dv = wasm.dv();
      wasm.u8().set(local.split('.').map(Number), rawOuter + OUTER_SRC_IP);
      dv.setUint32(rawOuter + OUTER_FLAGS, 0, true);
      dv.setUint32(rawOuter + OUTER_PORT_MIN, OUTER_PORT_MIN_DEFAULT, true);
      dv.setUint32(rawOuter + OUTER_PORT_MAX, OUTER_PORT_MAX_DEFAULT, true);
    }
    const dp = Datapath.create({
      learning: o.learning ?? false,
      arpProxy: o.arpProxy ?? true,
      floodUnknownUnicast: o.floodUnknown ?? true,
      ...(o.fdbCapacity !== undefined ? { fdbCapacity: o.fdbCapacity } : {}),
      ...(o.maxPeers !== undefined ? { maxPeers: o.maxPeers } : {}),
      ...(o.maxVnis !== undefined ? { maxVnis: o.maxVnis } : {}),
      ...(o.ageingSeconds !== undefined ? { ageingSeconds: o.ageingSeconds } : {}),
      ...(rawOuter !== undefined ? { rawUnderlayOuter: rawOuter } : {}),
    });
    const udp = inNetns(o.netns, () =>
      UdpBind.open({ address: local, port, gro: offload, rcvbuf: 8 << 20, sndbuf: 8 << 20 }),
    );
    let raw: RawSender | undefined;
    let espUdp: UdpBind | undefined;
    let helpers: EspHelpers | undefined;
    let engineRef: VtepEngine | undefined;
    try {
      if (enc) {
        espUdp = inNetns(o.netns, () =>
          encap === 'ip'
            ? RawSender.openProto(IPPROTO_ESP, { rcvbuf: 16 << 20, sndbuf: 8 << 20, batch: ESP_IP_BATCH })
            : UdpBind.open({ address: local, port: espPort, gro: offload, rcvbuf: 8 << 20, sndbuf: 8 << 20 }),
        );
      }
      if (underlay === 'raw') raw = inNetns(o.netns, () => RawSender.open({ family: 4, sndbuf: 8 << 20 }));
      const frame = offload ? TSO_MAX_FRAME : 9216;
      const fromTap = new PacketBatch({ capacity: offload ? 16 : 64, frameCapacity: frame });
      const fromUdp = new PacketBatch({ capacity: offload ? 32 : 64, frameCapacity: offload ? 65535 : 9216 });
      const outCap = offload ? 2048 : 1024;
      const decCap = offload ? 2048 : 64;
      const ioStats = wasm.alloc(IO_STATS_BYTES);
      const data: ServiceData = {
        dp: { ctx: dp.ctx, scratch: wasm.alloc(SCRATCH_RECORDS * 16) },
        udp: udp.handle(),
        fromTap: fromTap.handle(),
        fromUdp: fromUdp.handle(),
        out: { descs: wasm.alloc(outCap * DESC_SIZE), capacity: outCap },
        dec: { descs: wasm.alloc(decCap * DESC_SIZE), capacity: decCap },
        ioStats,
        tickMs: 100,
        port,
        realtime: o.realtime ?? 0,
        ...(raw
          ? {
              raw: raw.handle(),
              rawOuter,
              flood: new PacketBatch({ capacity: 16, frameCapacity: 9216 }).handle(),
            }
          : {}),
        ...(offload
          ? {
              offload: offloadRegions(wasm, {
                outCapacity: outCap,
                groCapacity: decCap,
                splitCapacity: 1024,
              }),
            }
          : {}),
      };
      let esp: Esp | undefined;
      if (enc && espUdp) {
        // 3 keys x 2 directions per peer of an encrypted port: 64 such peers by default.
        const maxSas = enc.maxSas ?? 384;
        esp = new Esp({ core: wasm, maxSas, maxKeys: maxSas, maxPeers: o.maxPeers ?? 1024 });
        data.esp = {
          handle: esp.handle(),
          udp: espUdp.handle(),
          port: espPort,
          ip: encap === 'ip',
          local,
          icvLen,
          // Protocol 50 has no GRO: each recvmmsg slot is one packet, so take more per call.
          from: new PacketBatch({
            capacity: encap === 'ip' ? ESP_IP_BATCH : 32,
            frameCapacity: offload && encap === 'udp' ? 65535 : 9216 + 64,
          }).handle(),
          seal: new PacketBatch({ capacity: ESP_IP_BATCH, frameCapacity: 9216 + 64 }).handle(),
          copies: wasm.alloc(ESP_IP_BATCH * 2 * 12),
          addrs: wasm.alloc((o.maxPeers ?? 1024) * 32),
        };
        const workers = enc.cryptoWorkers ?? 0;
        if (workers !== 0) {
          const split = espSplitRegions(wasm, esp, workers, enc.splitMinBytes);
          data.esp.split = split;
          helpers = new EspHelpers(wasm, split, (index, error) => {
            engineRef?.emit('helperFailed', { index, error } satisfies HelperFailedEvent);
          });
        }
      }
      void SEND_BATCH;
      const engine = new VtepEngine(
        { local, port, underlay, offload },
        dp,
        udp,
        raw,
        ioStats,
        undefined,
        esp && espUdp ? { esp, udp: espUdp, icvLen, udpEncap: encap === 'udp', helpers } : undefined,
      );
      engineRef = engine;
      engine.worker = await IoWorker.start({
        file: workerFile(),
        data,
        memory: wasm.memory,
        onEvent: (m) => engine.onMessage(m as ServiceMessage),
      });
      engine.worker.finished.catch((e: unknown) => engine.failAll(e as Error));
      return engine;
    } catch (e) {
      raw?.close();
      espUdp?.close();
      udp.close();
      await helpers?.close().catch(() => undefined);
      throw e;
    }
  }

  private onMessage(m: ServiceMessage): void {
    if (m.kind === 'reply') {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error) p.reject(new VxError(m.error.code as `ERR_${string}`, m.error.message));
      else p.resolve(m.result);
      return;
    }
    for (const e of m.events) {
      const ev = this.toEvent(e);
      if (ev) this.emit(ev.type, ev);
    }
  }

  private toEvent(e: DatapathEvent): EngineEvent | undefined {
    if (e.type === 'l2miss') return { type: 'l2miss', vni: e.vni, mac: e.mac };
    if (e.type === 'l3miss') return { type: 'l3miss', vni: e.vni, ip: e.ip };
    if (!e.address) return undefined;
    return { type: 'learned', vni: e.vni, address: e.address.address, port: e.address.port };
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  private request<T>(op: ControlOp): Promise<T> {
    if (this.closing || !this.worker) {
      return Promise.reject(new VxError('ERR_VTEP_CLOSED', 'the tunnel endpoint is closed'));
    }
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker!.post({ ...op, id } satisfies Control);
    });
  }

  private remote(r: Remote | string): RemoteRef {
    const address = typeof r === 'string' ? r : r?.address;
    const port = (typeof r === 'string' ? undefined : r.port) ?? this.port;
    if (typeof address !== 'string' || !(isIPv4(address) || isIPv6(address))) {
      throw new VxError('ERR_INVALID_ADDRESS', `remote "${String(address)}" is not an IPv4 or IPv6 address`);
    }
    if ((isIPv4(address) ? 4 : 6) !== this.family) {
      throw new VxError(
        'ERR_ADDRESS_FAMILY',
        `remote ${address} is not of the underlay's family (the socket is bound to ${this.local})`,
      );
    }
    if (this.underlay === 'raw' && !isIPv4(address)) {
      throw new VxError('ERR_RAW_UNDERLAY_V4', `the raw underlay reaches IPv4 peers only, got ${address}`);
    }
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new VxError('ERR_INVALID_ARG', `remote port must be an integer in 1..65535, got ${port}`);
    }
    return { address, port };
  }

  // ---- Ports -----------------------------------------------------------------------------------

  /** Creates the TAP of `vni` and starts forwarding it. Errors: ERR_VNI_IN_USE, ERR_TAP_*. */
  async addPort(o: PortOptions): Promise<TapPort> {
    if (this.ports.has(o.vni)) throw new VxError('ERR_VNI_IN_USE', `VNI ${o.vni} already has a port`);
    if (o.encrypted && !this.esp) {
      throw new VxError('ERR_ESP_DISABLED', 'an encrypted port needs the engine opened with encryption');
    }
    const tap = inNetns(o.netns, () =>
      TapDevice.open({ ...(o.name !== undefined ? { name: o.name } : {}), vnetHdr: this.offload }),
    );
    try {
      tap.setLink({ mtu: o.mtu, up: o.up ?? true, ...(o.netns !== undefined ? { netns: o.netns } : {}) });
    } catch (e) {
      tap.close();
      throw e;
    }
    const port: TapPort = {
      vni: o.vni,
      name: tap.name,
      tap,
      ...(o.netns !== undefined ? { netns: o.netns } : {}),
    };
    this.ports.set(o.vni, port);
    try {
      await this.request({
        op: 'addPort',
        vni: o.vni,
        tap: tap.handle(),
        mtu: o.mtu ?? 1500,
        ...(o.encrypted ? { encrypted: true } : {}),
      });
    } catch (e) {
      this.ports.delete(o.vni);
      tap.close();
      throw e;
    }
    return port;
  }

  /** Stops forwarding `vni` and removes its TAP (wherever it was moved). Can run twice. */
  async removePort(vni: number): Promise<void> {
    const p = this.ports.get(vni);
    if (!p) return;
    this.ports.delete(vni);
    try {
      await this.request({ op: 'removePort', vni });
    } finally {
      p.tap.close();
    }
  }

  portOf(vni: number): TapPort | undefined {
    return this.ports.get(vni);
  }

  /** Every port, by VNI. */
  portList(): TapPort[] {
    return [...this.ports.values()];
  }

  /** Whether this engine can carry encrypted ports. */
  get encryption(): boolean {
    return this.esp !== undefined;
  }

  /**
   * Bytes an encrypted port's MTU gives up next to a cleartext one on the same underlay (ESP
   * header, IV, padding, trailer, ICV and the RFC 3948 UDP header); 0 without encryption.
   */
  espOverhead(): number {
    return this.esp ? espOverhead({ icvLen: this.esp.icvLen, udpEncap: this.esp.udpEncap }) : 0;
  }

  /**
   * Installs the key ring encrypted ports use (every key for receiving, the primary for sending):
   * SAs per key and peer are derived on the I/O thread (src/crypto/esp-sas.ts). Settles once applied.
   */
  async setKeys(keys: EspKeySet): Promise<void> {
    if (!this.esp) throw new VxError('ERR_ESP_DISABLED', 'the engine was opened without encryption');
    const copy = {
      keys: keys.keys.map((k) => ({ id: k.id, secret: new Uint8Array(k.secret) })),
      primary: keys.primary,
    };
    await this.request({ op: 'setKeys', keys: copy });
  }

  // ---- Remote endpoints ------------------------------------------------------------------------

  /** Adds `remote` to the flood list of `vni` (head-end replication of broadcast/multicast). */
  async addPeer(vni: number, remote: Remote | string): Promise<void> {
    await this.request({ op: 'addPeer', vni, remote: this.remote(remote) });
  }

  /** Takes `remote` off the flood list of `vni`; the peer goes once nothing uses it. */
  async removePeer(vni: number, remote: Remote | string): Promise<boolean> {
    return this.request({ op: 'removePeer', vni, remote: this.remote(remote) });
  }

  /** Static FDB entries: frames to `mac` in `vni` go to `remote` (replacing an entry there). */
  async addFdb(vni: number, entries: { mac: string; remote: Remote | string }[]): Promise<void> {
    const list = entries.map((e) => ({ mac: e.mac, remote: this.remote(e.remote) }));
    await this.request({ op: 'addFdb', vni, entries: list });
  }

  /** Removes FDB entries (static or learned); returns how many were there. */
  removeFdb(vni: number, macs: string[]): Promise<number> {
    return this.request({ op: 'removeFdb', vni, macs });
  }

  /** Neighbour entries the ARP proxy answers from: `ip` is at `mac` in `vni`. */
  async addNeigh(vni: number, entries: { ip: string; mac: string }[]): Promise<void> {
    await this.request({ op: 'addNeigh', vni, entries });
  }

  removeNeigh(vni: number, ips: string[]): Promise<number> {
    return this.request({ op: 'removeNeigh', vni, ips });
  }

  // ---- Reads -----------------------------------------------------------------------------------

  /** FDB entries (static and learned), optionally of one VNI. */
  fdb(vni?: number): FdbView[] {
    const addr = new Map(this.dp.peers().map((p) => [p.index, p.address]));
    return this.dp
      .fdbEntries()
      .filter((e) => vni === undefined || e.vni === vni)
      .map((e) => {
        const a = addr.get(e.peer);
        return { vni: e.vni, mac: e.mac, address: a?.address ?? '', port: a?.port ?? 0, static: e.static };
      });
  }

  /** Counters per VNI, per peer and in total, and the I/O thread's syscall counters. */
  stats(): EngineStats {
    const c = this.dp.counters();
    const vnis = new Map<number, Counters>();
    for (const [vni, b] of c.ports) vnis.set(vni, countersOf(b));
    const peers = this.dp.peers().map((p) => ({
      address: p.address.address,
      port: p.address.port,
      learned: p.learned,
      counters: countersOf(c.peers.get(p.index)!),
    }));
    const io = readIoCounters(core().dv(), this.ioStats);
    const global = countersOf(c.global);
    if (!this.esp) return { vnis, peers, global, io, eventsLost: c.eventsLost };
    // ESP drops happen before a datagram has a VNI or peer: they show in the global counters.
    const e = this.esp.esp.counters();
    const drops: Record<string, number> = {};
    for (const r of Object.keys(ESP_DROP_NAMES).map(Number)) {
      const k = DROP_NAMES[r] ?? `drop${r}`;
      const n = e.drops[r] ?? 0;
      drops[k] = n;
      global.drops[k] = (global.drops[k] ?? 0) + n;
      global.dropped += n;
    }
    const esp = {
      sealed: e.sealed,
      sealedBytes: e.sealedBytes,
      opened: e.opened,
      openedBytes: e.openedBytes,
      drops,
      ...helperStats(this.esp.helpers),
    };
    return { vnis, peers, global, io, eventsLost: c.eventsLost, esp };
  }

  // ---- Lifetime --------------------------------------------------------------------------------

  /**
   * Settles when the I/O worker ends: after close() it resolves (packets moved); if the worker
   * fails on its own (a TAP deleted under it, a fault in a pump) it rejects with ERR_IO_WORKER.
   */
  get finished(): Promise<number> {
    return this.worker?.finished ?? Promise.resolve(0);
  }

  /** Stops the worker, removes every TAP and closes the sockets. Can run twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.worker?.stop().catch(() => 0);
      } finally {
        this.failAll(new VxError('ERR_VTEP_CLOSED', 'the tunnel endpoint is closed'));
        for (const p of this.ports.values()) p.tap.close();
        this.ports.clear();
        this.raw?.close();
        this.esp?.udp.close();
        this.udp.close();
        await this.esp?.helpers?.close().catch(() => undefined);
      }
    })();
    return this.closing;
  }
}
