// OverlayPorts on the Linux kernel's own `vxlan` device: the reference implementation the daemon
// tests run against, so the namespace plumbing is exercised with a real VXLAN port that vxnet did
// not write.
//
// Owns: one `vxlan0` per network sandbox. As Docker's overlay driver does, the device is created
// in the daemon's (host's) namespace, so its UDP socket (dstport 4789) lives on the underlay, and
// is then moved into the sandbox and enslaved to br0. `nolearning`: remote MACs come only from
// the store (setRemotes), never from the wire. `proxy`: ARP requests for remote endpoints are
// answered from the neighbour entries setRemotes writes, and no ARP frame crosses the tunnel --
// as Docker's overlay and as vxnet's TAP datapath do (its ARP proxy drops ARP replies from the
// bridge, as the kernel's arp_reduce does), so a kernel host and a TAP host interoperate. A crash between create and move leaves a
// `vxt-<vni>` in the host namespace; ensure() and sweep() remove it.
// It does not encrypt (`encrypts = false`: the kernel here has no gcm(aes) for IPsec, and vxnet's
// own datapath is what encrypts), so the engine refuses endpoints of encrypted networks on it.
// setRemotes diffs against the kernel's tables the first time a port is programmed (and after
// ensure() or a failed write), then against what it last wrote: reading the whole FDB and
// neighbour table back for every change would make each endpoint join cost O(endpoints) commands'
// worth of output on every other host (nothing else writes these static entries: `nolearning`).

import { VXLAN_PORT } from '../../assembly/constants.js';
import { ip, ipJson, run } from '../kernel/exec.js';
import { deleteLink, getLink, listLinks, moveLink, setLink } from '../kernel/link.js';
import { netnsExists } from '../kernel/netns.js';
import {
  type FdbEntry,
  type OverlayPorts,
  type PeerInfo,
  type PortRef,
  type PortSpec,
  type PortStats,
  peersOf,
  type RemoteEndpoint,
} from './ports.js';

const DEV = 'vxlan0';
const ZERO_MAC = '00:00:00:00:00:00';
const TEMP = /^vxt-[0-9]+$/;

interface BridgeFdb {
  mac: string;
  dst?: string;
  flags?: string[];
  state?: string;
  /** Set on br0's entries learned on the port (not the port's own table). */
  master?: string;
}

interface KernelNeigh {
  dst: string;
  lladdr?: string;
  state?: string[];
}

const lines = (cmds: string[][]) => `${cmds.map((c) => c.join(' ')).join('\n')}\n`;

interface LinkStats {
  stats64?: {
    rx: Record<string, number>;
    tx: Record<string, number>;
  };
}

export interface KernelVxlanOptions {
  /** The host's namespace, where the devices are made (default: this process's). */
  hostNetns?: string;
  /** Source address of the tunnel (`local`); default: chosen by the kernel's routing. */
  local?: string;
}

export class KernelVxlanPorts implements OverlayPorts {
  readonly kind = 'kernel-vxlan';
  readonly encrypts = false;
  private readonly known = new Map<string, PortRef>();
  private readonly remotes = new Map<string, RemoteEndpoint[]>();
  /** Per network: the entries last written (`mac vtep` of the FDB incl. flood entries; ip -> mac). */
  private readonly written = new Map<string, { fdb: Set<string>; neigh: Map<string, string> }>();
  private readonly host: { netns?: string };
  private readonly local: string[];

  constructor(o: KernelVxlanOptions = {}) {
    this.host = o.hostNetns === undefined ? {} : { netns: o.hostNetns };
    this.local = o.local === undefined ? [] : ['local', o.local];
  }

  async ensure(o: PortSpec): Promise<void> {
    const where = { netns: o.sandbox };
    const existing = await getLink(DEV, where);
    if (existing?.kind !== 'vxlan') {
      if (existing) await deleteLink(DEV, where);
      const temp = `vxt-${o.vni}`;
      await deleteLink(temp, this.host);
      const args = ['link', 'add', temp, 'type', 'vxlan', 'id', String(o.vni), 'dstport', String(VXLAN_PORT)];
      await ip([...args, ...this.local, 'nolearning', 'proxy'], {
        ...this.host,
        action: `add vxlan "${temp}"`,
      });
      await moveLink(temp, { ...this.host, to: o.sandbox, rename: DEV });
    }
    this.written.delete(o.network);
    await setLink(DEV, { ...where, mtu: o.mtu, master: o.bridge, up: true });
    this.known.set(o.network, { network: o.network, vni: o.vni, sandbox: o.sandbox });
    const remotes = this.remotes.get(o.network);
    if (remotes) await this.program(o, remotes);
  }

  async remove(o: PortRef): Promise<void> {
    this.known.delete(o.network);
    this.remotes.delete(o.network);
    this.written.delete(o.network);
    await deleteLink(`vxt-${o.vni}`, this.host);
    if (netnsExists(o.sandbox)) await deleteLink(DEV, { netns: o.sandbox });
  }

  async setRemotes(o: PortRef, remotes: RemoteEndpoint[]): Promise<void> {
    // Recorded once programmed, so `peers()` and `fdb()` never show a table still being applied.
    if (netnsExists(o.sandbox)) await this.program(o, remotes);
    this.remotes.set(o.network, remotes);
  }

  /**
   * Makes the port's remote entries equal `remotes`: flood entries per VTEP, one FDB entry and one
   * permanent neighbour per endpoint. Diffs against what the kernel holds (read back the first
   * time, then what was last written), so entries that stay are never touched (traffic to them is
   * not interrupted) and none that went is left behind.
   */
  private async program(o: PortRef, remotes: RemoteEndpoint[]): Promise<void> {
    const at = { netns: o.sandbox, action: `program remotes of ${DEV}` };
    const want = new Map<string, string>();
    for (const vtep of new Set(remotes.map((r) => r.vtep))) want.set(`${ZERO_MAC} ${vtep}`, 'append');
    for (const r of remotes) want.set(`${r.mac} ${r.vtep}`, 'replace');
    const macs = new Set(remotes.map((r) => r.mac));
    const ips = new Map(remotes.map((r) => [r.ip, r.mac]));
    const next = { fdb: new Set(want.keys()), neigh: new Map(ips) };
    const fdb: string[][] = [];
    const neigh: string[][] = [];
    const last = this.written.get(o.network);
    // Until both writes below succeed, the kernel's state is unknown: read it back next time.
    this.written.delete(o.network);
    if (last) {
      for (const k of last.fdb) {
        if (want.has(k)) want.delete(k);
        else {
          const [mac, dst] = k.split(' ') as [string, string];
          if (mac === ZERO_MAC || !macs.has(mac)) fdb.push(['fdb', 'del', mac, 'dev', DEV, 'dst', dst]);
        }
      }
      for (const [ipAddr, mac] of last.neigh) {
        const wanted = ips.get(ipAddr);
        if (wanted === mac) ips.delete(ipAddr);
        else if (wanted === undefined) neigh.push(['neigh', 'del', ipAddr, 'dev', DEV]);
      }
    } else {
      for (const e of await this.rawFdb(o)) {
        if (e.dst === undefined) continue;
        const k = `${e.mac} ${e.dst}`;
        if (want.has(k) && (e.mac === ZERO_MAC || e.state === 'permanent' || e.state === 'static')) {
          want.delete(k);
        } else if (e.mac === ZERO_MAC || !macs.has(e.mac))
          fdb.push(['fdb', 'del', e.mac, 'dev', DEV, 'dst', e.dst]);
      }
      for (const n of await ipJson<KernelNeigh>(['neigh', 'show', 'dev', DEV], at)) {
        const wanted = ips.get(n.dst);
        if (wanted !== undefined && wanted === n.lladdr && n.state?.includes('PERMANENT')) ips.delete(n.dst);
        else if (wanted === undefined) neigh.push(['neigh', 'del', n.dst, 'dev', DEV]);
      }
    }
    for (const [k, how] of want) {
      const [mac, vtep] = k.split(' ') as [string, string];
      fdb.push(['fdb', how, mac, 'dev', DEV, 'dst', vtep, ...(how === 'replace' ? ['static'] : [])]);
    }
    for (const [ipAddr, mac] of ips)
      neigh.push(['neigh', 'replace', ipAddr, 'lladdr', mac, 'dev', DEV, 'nud', 'permanent']);
    if (fdb.length > 0) await run('bridge', ['-batch', '-'], { ...at, input: lines(fdb) });
    if (neigh.length > 0) await ip(['-batch', '-'], { ...at, input: lines(neigh) });
    this.written.set(o.network, next);
  }

  private async rawFdb(o: PortRef): Promise<BridgeFdb[]> {
    if (!netnsExists(o.sandbox) || !(await getLink(DEV, { netns: o.sandbox }))) return [];
    const out = await run('bridge', ['-j', 'fdb', 'show', 'dev', DEV], {
      netns: o.sandbox,
      action: `show fdb of ${DEV}`,
    });
    return out.trim() === '' ? [] : (JSON.parse(out) as BridgeFdb[]);
  }

  async fdb(o: PortRef): Promise<FdbEntry[]> {
    const ips = new Map((this.remotes.get(o.network) ?? []).map((r) => [r.mac, r.ip]));
    // The port's own table (`self`), not br0's entries learned on the port (`master`).
    const own = (await this.rawFdb(o)).filter((e) => e.master === undefined);
    return own.map((e) => {
      const entry: FdbEntry = { network: o.network, vni: o.vni, mac: e.mac, kind: e.state ?? 'learned' };
      if (e.dst !== undefined) entry.vtep = e.dst;
      const ipOf = ips.get(e.mac);
      if (ipOf !== undefined) entry.ip = ipOf;
      return entry;
    });
  }

  async peers(): Promise<PeerInfo[]> {
    return peersOf(this.remotes);
  }

  async stats(o: PortRef): Promise<PortStats> {
    const counters: Record<string, number> = {};
    if (netnsExists(o.sandbox)) {
      const rows = await ipJson<LinkStats>(['-s', 'link', 'show', 'dev', DEV], {
        netns: o.sandbox,
        action: `read counters of ${DEV}`,
      }).catch(() => []);
      const s = rows[0]?.stats64;
      for (const [dir, vals] of Object.entries(s ?? {})) {
        for (const [k, v] of Object.entries(vals)) counters[`${dir}_${k}`] = v;
      }
    }
    return { network: o.network, vni: o.vni, counters };
  }

  /** A `vxt-<vni>` in the host namespace is always a half-made port: ensure() makes a new one. */
  async sweep(_keep: PortRef[]): Promise<void> {
    for (const l of await listLinks(this.host)) if (TEMP.test(l.name)) await deleteLink(l.name, this.host);
  }

  async close(): Promise<void> {
    this.known.clear();
  }
}
