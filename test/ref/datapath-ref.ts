// A slow, obviously-correct plain-TypeScript datapath: the reference the WASM pipeline
// (assembly/datapath.ts) is checked against in tests and measured against in benches.
//
// Same semantics, same descriptor format in the same memory, but built from Maps and plain
// objects: FDB = Map<VNI, Map<MAC as number, entry>>, peers keyed by an address string, ports and
// flood lists as arrays. Index assignment (lowest free) matches the WASM tables so verdicts compare
// one to one. Where the WASM side writes an address (peer sockaddr, flood list), the reference
// writes what the `addressOf` hooks return (0 by default).
import {
  AF_INET,
  AF_INET6,
  DESC_ADDR,
  DESC_ARG,
  DESC_LEN,
  DESC_PTR,
  DESC_SIZE,
  DESC_VERDICT,
  DESC_VNI,
  DROP_ARP_PROXY,
  DROP_L2_MISS,
  DROP_L3_MISS,
  DROP_NO_PEERS,
  DROP_REASONS,
  DROP_TRUNCATED,
  DROP_UNKNOWN_PEER,
  DROP_UNKNOWN_VNI,
  DROP_VXLAN_FLAGS,
  DROP_VXLAN_RESERVED,
  VERDICT_DROP,
  VERDICT_FLOOD,
  VERDICT_LOCAL,
  VERDICT_REPLY,
  VERDICT_SEND,
} from '../../assembly/constants.js';

export interface RefOptions {
  fdbCapacity?: number;
  maxPeers?: number;
  maxVnis?: number;
  neighCapacity?: number;
  maxFloodPeers?: number;
  eventRingSize?: number;
  ageingSeconds?: number;
  learning?: boolean;
  arpProxy?: boolean;
  floodUnknownUnicast?: boolean;
  l2miss?: boolean;
  l3miss?: boolean;
  /** What to write into DESC_ADDR for a SEND to `peer` (the WASM side: the peer's sockaddr). */
  sockaddrOf?: (peer: number) => number;
  /** What to write into DESC_ADDR for a FLOOD from `port` (the WASM side: its flood list). */
  floodListOf?: (port: number) => number;
}

export interface RefFdbEntry {
  peer: number;
  static: boolean;
  time: number;
}

export interface RefCounters {
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
  floodPackets: number;
  replies: number;
  learned: number;
  learnRefused: number;
  drops: number[];
}

export type RefEvent =
  | { type: 'l2miss'; vni: number; mac: string }
  | { type: 'l3miss'; vni: number; ip: string }
  | { type: 'peer-learned'; vni: number; peer: number };

export const newCounters = (): RefCounters => ({
  txPackets: 0,
  txBytes: 0,
  rxPackets: 0,
  rxBytes: 0,
  floodPackets: 0,
  replies: 0,
  learned: 0,
  learnRefused: 0,
  drops: new Array(DROP_REASONS).fill(0),
});

/** A MAC as a number: byte 0 is the least significant (as the WASM side loads it). */
export function macNum(u8: Uint8Array, p: number): number {
  let v = 0;
  for (let i = 5; i >= 0; i--) v = v * 256 + u8[p + i]!;
  return v;
}

export function macText(u8: Uint8Array, p: number): string {
  return Array.from(u8.subarray(p, p + 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}

function macIsUnicast(u8: Uint8Array, p: number): boolean {
  return (u8[p]! & 1) === 0 && macNum(u8, p) !== 0;
}

/** The identity of the sockaddr at `p` (family, port, address), or undefined if it is none. */
export function sockaddrKey(u8: Uint8Array, p: number): string | undefined {
  const family = u8[p]! | (u8[p + 1]! << 8);
  const port = (u8[p + 2]! << 8) | u8[p + 3]!;
  if (family === AF_INET) return `4/${port}/${u8.subarray(p + 4, p + 8).join('.')}`;
  if (family === AF_INET6) return `6/${port}/${Array.from(u8.subarray(p + 8, p + 24)).join(',')}`;
  return undefined;
}

export class RefDatapath {
  readonly opts: Required<Omit<RefOptions, 'sockaddrOf' | 'floodListOf'>>;
  readonly sockaddrOf: (peer: number) => number;
  readonly floodListOf: (port: number) => number;
  readonly peers: ({ key: string; learned: boolean } | undefined)[] = [];
  readonly peerByKey = new Map<string, number>();
  readonly ports: ({ vni: number; flood: number[] } | undefined)[] = [];
  readonly portByVni = new Map<number, number>();
  readonly fdb = new Map<number, Map<number, RefFdbEntry>>();
  fdbCount = 0;
  readonly neigh = new Map<string, Uint8Array>();
  events: RefEvent[] = [];
  eventsLost = 0;
  readonly global = newCounters();
  readonly portCounters: RefCounters[] = [];
  readonly peerCounters: RefCounters[] = [];

  constructor(opts: RefOptions = {}) {
    const maxPeers = opts.maxPeers ?? 1024;
    let ring = 8;
    while (ring < (opts.eventRingSize ?? 1024)) ring *= 2;
    this.opts = {
      fdbCapacity: opts.fdbCapacity ?? 65536,
      maxPeers,
      maxVnis: opts.maxVnis ?? 256,
      neighCapacity: opts.neighCapacity ?? 65536,
      maxFloodPeers: opts.maxFloodPeers ?? maxPeers,
      eventRingSize: ring,
      ageingSeconds: opts.ageingSeconds ?? 300,
      learning: opts.learning ?? false,
      arpProxy: opts.arpProxy ?? true,
      floodUnknownUnicast: opts.floodUnknownUnicast ?? false,
      l2miss: opts.l2miss ?? true,
      l3miss: opts.l3miss ?? true,
    };
    this.sockaddrOf = opts.sockaddrOf ?? (() => 0);
    this.floodListOf = opts.floodListOf ?? (() => 0);
  }

  // ---- Tables ----------------------------------------------------------------------------------

  /** Adds the peer whose sockaddr is at `p` in `u8`; its index, or -1 if the table is full. */
  addPeer(u8: Uint8Array, p: number, learned = false): number {
    const key = sockaddrKey(u8, p);
    if (key === undefined) throw new Error('not a sockaddr');
    const found = this.peerByKey.get(key);
    if (found !== undefined) {
      const e = this.peers[found]!;
      e.learned &&= learned;
      return found;
    }
    let i = 0;
    while (i < this.opts.maxPeers && this.peers[i]) i++;
    if (i === this.opts.maxPeers) return -1;
    this.peers[i] = { key, learned };
    this.peerByKey.set(key, i);
    this.peerCounters[i] = newCounters();
    return i;
  }

  removePeer(peer: number): void {
    const e = this.peers[peer];
    if (!e) return;
    for (const m of this.fdb.values()) {
      for (const [mac, f] of m) {
        if (f.peer === peer) {
          m.delete(mac);
          this.fdbCount--;
        }
      }
    }
    for (const port of this.ports) if (port) port.flood = port.flood.filter((x) => x !== peer);
    this.peers[peer] = undefined;
    this.peerByKey.delete(e.key);
  }

  addPort(vni: number): number {
    const found = this.portByVni.get(vni);
    if (found !== undefined) return found;
    let i = 0;
    while (i < this.opts.maxVnis && this.ports[i]) i++;
    if (i === this.opts.maxVnis) return -1;
    this.ports[i] = { vni, flood: [] };
    this.portByVni.set(vni, i);
    this.portCounters[i] = newCounters();
    return i;
  }

  removePort(vni: number): void {
    const port = this.portByVni.get(vni);
    if (port === undefined) return;
    this.ports[port] = undefined;
    this.portByVni.delete(vni);
    this.flushVni(vni);
    for (const k of [...this.neigh.keys()]) if (k.startsWith(`${vni}/`)) this.neigh.delete(k);
  }

  addFlood(vni: number, peer: number): void {
    const port = this.ports[this.portByVni.get(vni)!]!;
    if (!port.flood.includes(peer)) port.flood.push(peer);
  }

  fdbGet(vni: number, mac: number): RefFdbEntry | undefined {
    return this.fdb.get(vni)?.get(mac);
  }

  private fdbInsert(vni: number, mac: number, e: RefFdbEntry): boolean {
    if (this.fdbCount >= this.opts.fdbCapacity) return false;
    let m = this.fdb.get(vni);
    if (!m) {
      m = new Map();
      this.fdb.set(vni, m);
    }
    m.set(mac, e);
    this.fdbCount++;
    return true;
  }

  /** Control-plane add: 'ok' | 'full' | 'static-exists'. */
  fdbAdd(
    vni: number,
    mac: number,
    peer: number,
    now: number,
    replace = false,
  ): 'ok' | 'full' | 'static-exists' {
    const e = this.fdbGet(vni, mac);
    if (!e) return this.fdbInsert(vni, mac, { peer, static: true, time: now }) ? 'ok' : 'full';
    if (e.static && e.peer !== peer && !replace) return 'static-exists';
    Object.assign(e, { peer, static: true, time: now });
    return 'ok';
  }

  fdbRemove(vni: number, mac: number): boolean {
    const m = this.fdb.get(vni);
    if (!m?.delete(mac)) return false;
    this.fdbCount--;
    return true;
  }

  /** Learning: 1 created or moved, 0 unchanged, -1 refused. */
  fdbLearn(vni: number, mac: number, peer: number, now: number): number {
    const e = this.fdbGet(vni, mac);
    if (!e) return this.fdbInsert(vni, mac, { peer, static: false, time: now }) ? 1 : -1;
    if (e.static) return e.peer === peer ? 0 : -1;
    e.time = now;
    if (e.peer === peer) return 0;
    e.peer = peer;
    return 1;
  }

  flushVni(vni: number): number {
    const n = this.fdb.get(vni)?.size ?? 0;
    this.fdb.delete(vni);
    this.fdbCount -= n;
    return n;
  }

  /** Removes every learned entry idle for ageingSeconds or more. */
  age(now: number): number {
    if (this.opts.ageingSeconds === 0) return 0;
    let n = 0;
    for (const m of this.fdb.values()) {
      for (const [mac, e] of m) {
        if (!e.static && (now - e.time) >>> 0 >= this.opts.ageingSeconds) {
          m.delete(mac);
          n++;
        }
      }
    }
    this.fdbCount -= n;
    return n;
  }

  addNeighbour(vni: number, ip: string, mac: Uint8Array): void {
    this.neigh.set(`${vni}/${ip}`, mac);
  }

  private event(e: RefEvent): void {
    const last = this.events[this.events.length - 1];
    if (last && JSON.stringify(last) === JSON.stringify(e)) return;
    if (this.events.length >= this.opts.eventRingSize) {
      this.eventsLost++;
      return;
    }
    this.events.push(e);
  }

  drainEvents(): RefEvent[] {
    const out = this.events;
    this.events = [];
    return out;
  }

  // ---- Packets ---------------------------------------------------------------------------------

  private drop(dv: DataView, d: number, reason: number, port: number, peer: number): void {
    dv.setUint32(d + DESC_VERDICT, VERDICT_DROP, true);
    dv.setUint32(d + DESC_ARG, reason, true);
    this.global.drops[reason]!++;
    if (port >= 0) this.portCounters[port]!.drops[reason]!++;
    if (peer >= 0) this.peerCounters[peer]!.drops[reason]!++;
  }

  private pushVxlan(u8: Uint8Array, dv: DataView, d: number, p: number, len: number, vni: number): void {
    const h = p - 8;
    u8.fill(0, h, p);
    u8[h] = 0x08;
    u8[h + 4] = vni >>> 16;
    u8[h + 5] = (vni >>> 8) & 0xff;
    u8[h + 6] = vni & 0xff;
    dv.setUint32(d + DESC_PTR, h, true);
    dv.setUint32(d + DESC_LEN, len + 8, true);
  }

  encap(u8: Uint8Array, dv: DataView, descs: number, n: number, _now: number): number {
    let kept = 0;
    for (let k = 0; k < n; k++) {
      const d = descs + k * DESC_SIZE;
      const port = dv.getUint32(d + DESC_ARG, true);
      const portEntry = this.ports[port];
      if (!portEntry) {
        this.drop(dv, d, DROP_UNKNOWN_VNI, -1, -1);
        continue;
      }
      const vni = portEntry.vni;
      const p = dv.getUint32(d + DESC_PTR, true);
      const len = dv.getUint32(d + DESC_LEN, true);
      if (len < 14) {
        this.drop(dv, d, DROP_TRUNCATED, port, -1);
        continue;
      }
      dv.setUint32(d + DESC_VNI, vni, true);
      const etherType = (u8[p + 12]! << 8) | u8[p + 13]!;
      if (this.opts.arpProxy && etherType === 0x0806) {
        const r = this.arpReply(u8, p, len, vni);
        if (r < 0) {
          this.drop(dv, d, -r, port, -1);
          continue;
        }
        dv.setUint32(d + DESC_LEN, r, true);
        dv.setUint32(d + DESC_VERDICT, VERDICT_REPLY, true);
        dv.setUint32(d + DESC_ADDR, 0, true);
        this.portCounters[port]!.replies++;
        kept++;
        continue;
      }
      let peer = -1;
      if ((u8[p]! & 1) === 0) {
        peer = this.fdbGet(vni, macNum(u8, p))?.peer ?? -1;
        if (peer < 0) {
          if (this.opts.l2miss) this.event({ type: 'l2miss', vni, mac: macText(u8, p) });
          if (!this.opts.floodUnknownUnicast) {
            this.drop(dv, d, DROP_L2_MISS, port, -1);
            continue;
          }
        }
      }
      const pc = this.portCounters[port]!;
      if (peer < 0) {
        if (portEntry.flood.length === 0) {
          this.drop(dv, d, DROP_NO_PEERS, port, -1);
          continue;
        }
        this.pushVxlan(u8, dv, d, p, len, vni);
        dv.setUint32(d + DESC_VERDICT, VERDICT_FLOOD, true);
        dv.setUint32(d + DESC_ARG, port, true);
        dv.setUint32(d + DESC_ADDR, this.floodListOf(port), true);
        pc.txPackets++;
        pc.txBytes += len;
        pc.floodPackets++;
        kept++;
        continue;
      }
      this.pushVxlan(u8, dv, d, p, len, vni);
      dv.setUint32(d + DESC_VERDICT, VERDICT_SEND, true);
      dv.setUint32(d + DESC_ARG, peer, true);
      dv.setUint32(d + DESC_ADDR, this.sockaddrOf(peer), true);
      pc.txPackets++;
      pc.txBytes += len;
      const qc = this.peerCounters[peer]!;
      qc.txPackets++;
      qc.txBytes += len;
      kept++;
    }
    return kept;
  }

  /** The ARP proxy on the frame at `p`: the reply's length (written in place), or -DROP_*. */
  private arpReply(u8: Uint8Array, p: number, len: number, vni: number): number {
    if (len < 42) return -DROP_TRUNCATED;
    const a = p + 14;
    const be16 = (o: number) => (u8[a + o]! << 8) | u8[a + o + 1]!;
    const hrd = be16(0);
    const isRequest = (hrd === 1 || hrd === 6) && be16(2) === 0x0800 && u8[a + 4] === 6 && u8[a + 5] === 4;
    if (!isRequest || be16(6) !== 1) return -DROP_ARP_PROXY;
    const tip = u8.slice(a + 24, a + 28);
    if (tip[0] === 127 || (tip[0]! >= 224 && tip[0]! < 240)) return -DROP_ARP_PROXY;
    const ip = tip.join('.');
    const mac = this.neigh.get(`${vni}/${ip}`);
    if (!mac) {
      if (this.opts.l3miss) this.event({ type: 'l3miss', vni, ip });
      return -DROP_L3_MISS;
    }
    const sha = u8.slice(a + 8, a + 14);
    const sip = u8.slice(a + 14, a + 18);
    u8.set(sha, p); // Ethernet destination: the requester
    u8.set(mac, p + 6); // Ethernet source: the neighbour
    u8.set([0, 1, 8, 0, 6, 4, 0, 2], a); // Ethernet/IPv4, 6/4, op 2 (reply)
    u8.set(mac, a + 8);
    u8.set(tip, a + 14);
    u8.set(sha, a + 18);
    u8.set(sip, a + 24);
    return 42;
  }

  decap(u8: Uint8Array, dv: DataView, descs: number, n: number, now: number): number {
    let kept = 0;
    for (let k = 0; k < n; k++) {
      const d = descs + k * DESC_SIZE;
      const p = dv.getUint32(d + DESC_PTR, true);
      const len = dv.getUint32(d + DESC_LEN, true);
      const sa = dv.getUint32(d + DESC_ADDR, true);
      const key = sa === 0 ? undefined : sockaddrKey(u8, sa);
      let peer = key === undefined ? -1 : (this.peerByKey.get(key) ?? -1);
      if (len < 8) {
        this.drop(dv, d, DROP_TRUNCATED, -1, peer);
        continue;
      }
      if (u8[p] !== 0x08) {
        this.drop(dv, d, DROP_VXLAN_FLAGS, -1, peer);
        continue;
      }
      if (u8[p + 1] || u8[p + 2] || u8[p + 3] || u8[p + 7]) {
        this.drop(dv, d, DROP_VXLAN_RESERVED, -1, peer);
        continue;
      }
      const vni = (u8[p + 4]! << 16) | (u8[p + 5]! << 8) | u8[p + 6]!;
      const port = this.portByVni.get(vni) ?? -1;
      if (port < 0) {
        this.drop(dv, d, DROP_UNKNOWN_VNI, -1, peer);
        continue;
      }
      if (len - 8 < 14) {
        this.drop(dv, d, DROP_TRUNCATED, port, peer);
        continue;
      }
      if (peer < 0) {
        peer = this.opts.learning && key !== undefined ? this.addPeer(u8, sa, true) : -1;
        if (peer < 0) {
          this.drop(dv, d, DROP_UNKNOWN_PEER, port, -1);
          continue;
        }
        this.event({ type: 'peer-learned', vni, peer });
      }
      const inner = p + 8;
      const pc = this.portCounters[port]!;
      if (this.opts.learning && macIsUnicast(u8, inner + 6)) {
        const l = this.fdbLearn(vni, macNum(u8, inner + 6), peer, now);
        if (l > 0) pc.learned++;
        else if (l < 0) pc.learnRefused++;
      }
      dv.setUint32(d + DESC_PTR, inner, true);
      dv.setUint32(d + DESC_LEN, len - 8, true);
      dv.setUint32(d + DESC_VERDICT, VERDICT_LOCAL, true);
      dv.setUint32(d + DESC_ARG, port, true);
      dv.setUint32(d + DESC_VNI, vni, true);
      pc.rxPackets++;
      pc.rxBytes += len - 8;
      const qc = this.peerCounters[peer]!;
      qc.rxPackets++;
      qc.rxBytes += len - 8;
      kept++;
    }
    return kept;
  }
}
