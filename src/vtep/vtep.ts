// `Vtep`: one VXLAN tunnel endpoint — a TAP bound to one VNI, forwarding to remote endpoints over
// the underlay. The user-facing class of the library API and of `vxnet tunnel`.
//
// Owns nothing but the binding of one VNI: it opens a VtepEngine (engine.ts) with one port and
// narrows its API to that VNI. Several overlays on one host share one engine instead (one socket on
// the data-path port): use VtepEngine and addPort per VNI.
import { EventEmitter } from 'node:events';
import type { EspKeySet } from '../crypto/esp-sas.js';
import { VxError } from '../errors.js';
import type { Counters, IoCounters } from './counters.js';
import {
  type EngineEvent,
  type EngineOptions,
  type EspStats,
  type FdbView,
  type PeerView,
  type Remote,
  VtepEngine,
} from './engine.js';

export interface VtepOptions extends EngineOptions {
  /** TAP name (default: the kernel's tapN). */
  name?: string;
  /** The VNI, 0..16777215. */
  vni: number;
  /** The TAP's MTU (default 1500 - 50 = 1450). */
  mtu?: number;
  /** Remote endpoints: flood list (head-end replication of broadcast/multicast/ARP). */
  remotes?: (Remote | string)[];
  /** Static FDB entries: `mac` is behind `remote`. */
  fdb?: { mac: string; remote: Remote | string }[];
  /**
   * Neighbour entries the ARP proxy answers from: `ip` is at `mac`. The proxy is on (arpProxy)
   * by default only when some are given.
   */
  neigh?: { ip: string; mac: string }[];
  /**
   * Encrypt: the VNI is carried only as ESP (UDP-encapsulated, port 4500) under SAs derived from
   * this key ring, and cleartext VXLAN for it is dropped. Needs `local`.
   */
  keys?: EspKeySet;
}

export interface VtepStats {
  vni: number;
  counters: Counters;
  peers: PeerView[];
  global: Counters;
  io: IoCounters;
  esp?: EspStats;
}

export class Vtep extends EventEmitter {
  readonly vni: number;
  readonly name: string;
  private readonly forward: (e: EngineEvent) => void;

  private constructor(
    readonly engine: VtepEngine,
    vni: number,
    name: string,
  ) {
    super();
    this.vni = vni;
    this.name = name;
    this.forward = (e) => {
      if (e.vni === this.vni) this.emit(e.type, e);
    };
    for (const t of ['l2miss', 'l3miss', 'learned']) engine.on(t, this.forward);
  }

  /** Opens the underlay, creates the TAP (up, `mtu`) and programs remotes, FDB and neighbours. */
  static async open(o: VtepOptions): Promise<Vtep> {
    if (!o || !Number.isInteger(o.vni) || o.vni < 0 || o.vni > 0xffffff) {
      throw new VxError('ERR_INVALID_VNI', `options.vni must be an integer in 0..16777215, got ${o?.vni}`);
    }
    // Without neighbour entries the proxy could only drop ARP: flood it then, as Linux vxlan does.
    const engine = await VtepEngine.open({
      ...o,
      arpProxy: o.arpProxy ?? (o.neigh?.length ?? 0) > 0,
      ...(o.keys ? { encryption: o.encryption ?? {} } : {}),
    });
    try {
      const port = await engine.addPort({
        vni: o.vni,
        ...(o.name !== undefined ? { name: o.name } : {}),
        mtu: o.mtu ?? 1450 - (o.keys ? engine.espOverhead() : 0),
        ...(o.keys ? { encrypted: true } : {}),
      });
      if (o.keys) await engine.setKeys(o.keys);
      const v = new Vtep(engine, o.vni, port.name);
      for (const r of o.remotes ?? []) await v.addPeer(r);
      if (o.fdb?.length) await engine.addFdb(o.vni, o.fdb);
      if (o.neigh?.length) await engine.addNeigh(o.vni, o.neigh);
      return v;
    } catch (e) {
      await engine.close();
      throw e;
    }
  }

  addPeer(remote: Remote | string): Promise<void> {
    return this.engine.addPeer(this.vni, remote);
  }

  removePeer(remote: Remote | string): Promise<boolean> {
    return this.engine.removePeer(this.vni, remote);
  }

  addFdb(mac: string, remote: Remote | string): Promise<void> {
    return this.engine.addFdb(this.vni, [{ mac, remote }]);
  }

  removeFdb(mac: string): Promise<number> {
    return this.engine.removeFdb(this.vni, [mac]);
  }

  addNeigh(ip: string, mac: string): Promise<void> {
    return this.engine.addNeigh(this.vni, [{ ip, mac }]);
  }

  removeNeigh(ip: string): Promise<number> {
    return this.engine.removeNeigh(this.vni, [ip]);
  }

  fdb(): FdbView[] {
    return this.engine.fdb(this.vni);
  }

  /** Counters of this VNI, of each peer, in total, and of the I/O thread. */
  stats(): VtepStats {
    const s = this.engine.stats();
    const counters = s.vnis.get(this.vni);
    if (!counters) throw new VxError('ERR_VTEP_CLOSED', 'the tunnel endpoint is closed');
    return {
      vni: this.vni,
      counters,
      peers: s.peers,
      global: s.global,
      io: s.io,
      ...(s.esp ? { esp: s.esp } : {}),
    };
  }

  /** Removes the TAP, stops forwarding and closes the underlay. Can run twice. */
  async close(): Promise<void> {
    for (const t of ['l2miss', 'l3miss', 'learned']) this.engine.off(t, this.forward);
    await this.engine.close();
  }
}
