// OverlayPorts on vxnet's own datapath: each network's VXLAN port is a TAP served by one
// VtepEngine per daemon (src/vtep/engine.ts) instead of the kernel's `vxlan` device.
//
// Owns: the engine (opened on the first network: its data-path socket bound in the host's
// namespace on --cluster-advertise, or any address, port 4789), one TAP per network made straight
// inside the network's sandbox and enslaved to br0, and the remote endpoints last applied per
// network. setRemotes diffs the whole table against what was applied, so entries that stay are
// never touched: per VTEP a flood-list entry (broadcast and unknown unicast go to every host of
// the network, as the kernel port's all-zeros entries do), per endpoint a static FDB entry and a
// neighbour entry the ARP proxy answers from. No learning: remote MACs come only from the store.
// The TAPs live as long as the daemon's fds: close() removes them (they are not persistent), and a
// restarted daemon makes them again in ensure().
// Encrypted networks (`--opt encrypted`): their TAP is an encrypted port of the engine (ESP
// AES-GCM as IP protocol 50 by default, or in UDP 4500 with `espEncap: 'udp'` (daemon
// `--esp-encap udp`); cleartext VXLAN for the VNI dropped, ESP for a plain VNI dropped), under SAs
// derived from the cluster keys applyKeys hands over (kept here and installed on the engine
// whenever it opens). Plain networks on the same engine stay cleartext VXLAN on 4789. The mode is
// per host: every host of a cluster must use the same one (a proto-50 host does not read 4500).
import { VXLAN_PORT } from '../../assembly/constants.js';
import { espOverhead } from '../crypto/esp.js';
import { VxError } from '../errors.js';
import { setLink } from '../kernel/link.js';
import { netnsExists } from '../kernel/netns.js';
import type { Counters } from '../vtep/counters.js';
import { type EspEncap, type HelperFailedEvent, VtepEngine } from '../vtep/engine.js';
import type { AppliedKeys } from './keys.js';
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

/** The TAP's name inside every sandbox (each sandbox is its own namespace). */
const DEV = 'vxtap0';

export interface TapPortsOptions {
  /** The host's namespace, where the data-path socket is bound (default: this process's). */
  hostNetns?: string;
  /** Address to bind (this host's --cluster-advertise); default any IPv4 address. */
  local?: string;
  /** How encrypted networks' ESP crosses the underlay: 'ip' (protocol 50, default) or 'udp' (4500). */
  espEncap?: EspEncap;
  /**
   * Crypto helper threads that take slices of big ESP seal batches off the I/O thread (default 0:
   * on a host whose cores are all busy the hand-off only costs; see src/crypto/esp-split.ts).
   */
  cryptoWorkers?: number;
  /** Told when a crypto helper thread failed and its work moved back to the I/O thread. */
  onWarning?: (msg: string, detail: Record<string, unknown>) => void;
}

interface Applied {
  ref: PortRef;
  /** The table asked for (kept also while the port does not exist yet). */
  remotes: RemoteEndpoint[];
  /** What the engine holds now: VTEPs, MAC -> VTEP, IP -> MAC. */
  vteps: Set<string>;
  fdb: Map<string, string>;
  neigh: Map<string, string>;
  up: boolean;
  encrypted: boolean;
}

export class TapPorts implements OverlayPorts {
  readonly kind = 'vxnet-tap';
  readonly encrypts = true;
  private engine: Promise<VtepEngine> | undefined;
  private readonly nets = new Map<string, Applied>();
  /** One change at a time: ensure/remove/setRemotes of several networks interleave otherwise. */
  private queue: Promise<unknown> = Promise.resolve();
  /** The cluster keys last applied (installed on the engine when it opens). */
  private keys: AppliedKeys | undefined;
  readonly espOverhead: number;

  constructor(private readonly o: TapPortsOptions = {}) {
    const encap = o.espEncap ?? 'ip';
    if (encap !== 'ip' && encap !== 'udp') {
      throw new VxError('ERR_BAD_OPTION', `--esp-encap must be "ip" or "udp", got "${String(encap)}"`);
    }
    this.espOverhead = espOverhead({ udpEncap: encap === 'udp' });
  }

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const next = this.queue.then(f, f);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private open(): Promise<VtepEngine> {
    this.engine ??= (async () => {
      const e = await VtepEngine.open({
        ...(this.o.local !== undefined ? { local: this.o.local } : {}),
        ...(this.o.hostNetns !== undefined ? { netns: this.o.hostNetns } : {}),
        port: VXLAN_PORT,
        learning: false,
        arpProxy: true,
        floodUnknown: true,
        // Encryption needs this host's address (the SAs are derived from both ends' addresses).
        ...(this.o.local !== undefined
          ? {
              encryption: {
                encap: this.o.espEncap ?? 'ip',
                ...(this.o.cryptoWorkers ? { cryptoWorkers: this.o.cryptoWorkers } : {}),
              },
            }
          : {}),
      });
      e.on('helperFailed', (h: HelperFailedEvent) =>
        this.o.onWarning?.('crypto helper failed; sealing on the I/O thread', {
          helper: h.index,
          err: h.error.message,
        }),
      );
      try {
        if (this.keys && e.encryption) await e.setKeys(this.keys);
      } catch (err) {
        await e.close();
        throw err;
      }
      return e;
    })();
    this.engine.catch(() => {
      this.engine = undefined;
    });
    return this.engine;
  }

  private state(ref: PortRef): Applied {
    let a = this.nets.get(ref.network);
    if (!a) {
      a = {
        ref,
        remotes: [],
        vteps: new Set(),
        fdb: new Map(),
        neigh: new Map(),
        up: false,
        encrypted: false,
      };
      this.nets.set(ref.network, a);
    }
    a.ref = { network: ref.network, vni: ref.vni, sandbox: ref.sandbox };
    return a;
  }

  ensure(spec: PortSpec): Promise<void> {
    return this.serial(async () => {
      const engine = await this.open();
      if (spec.encrypted && !engine.encryption) {
        throw new VxError('ERR_ESP_CONFIG', 'encrypted networks on TAP ports need --cluster-advertise');
      }
      const a = this.state(spec);
      const existing = engine.portOf(spec.vni);
      const stale = !a.up || existing?.netns !== spec.sandbox || a.encrypted !== spec.encrypted;
      if (existing && stale) await engine.removePort(spec.vni);
      if (!engine.portOf(spec.vni)) {
        a.vteps.clear();
        a.fdb.clear();
        a.neigh.clear();
        await engine.addPort({
          vni: spec.vni,
          name: DEV,
          mtu: spec.mtu,
          netns: spec.sandbox,
          encrypted: spec.encrypted,
        });
        a.encrypted = spec.encrypted;
      }
      await setLink(DEV, { netns: spec.sandbox, mtu: spec.mtu, master: spec.bridge, up: true });
      a.up = true;
      await this.program(engine, a);
    });
  }

  remove(ref: PortRef): Promise<void> {
    return this.serial(async () => {
      this.nets.delete(ref.network);
      const engine = this.engine && (await this.engine.catch(() => undefined));
      await engine?.removePort(ref.vni);
    });
  }

  setRemotes(ref: PortRef, remotes: RemoteEndpoint[]): Promise<void> {
    return this.serial(async () => {
      const a = this.state(ref);
      a.remotes = remotes;
      if (a.up && this.engine) await this.program(await this.engine, a);
    });
  }

  /** Makes the engine's peers, FDB and neighbours of the network equal its remotes table. */
  private async program(engine: VtepEngine, a: Applied): Promise<void> {
    const vni = a.ref.vni;
    const vteps = new Set(a.remotes.map((r) => r.vtep));
    const fdb = new Map(a.remotes.map((r) => [r.mac.toLowerCase(), r.vtep]));
    const neigh = new Map(a.remotes.map((r) => [r.ip, r.mac.toLowerCase()]));
    for (const v of vteps) if (!a.vteps.has(v)) await engine.addPeer(vni, v);
    const addFdb = [...fdb]
      .filter(([mac, v]) => a.fdb.get(mac) !== v)
      .map(([mac, v]) => ({ mac, remote: v }));
    if (addFdb.length > 0) await engine.addFdb(vni, addFdb);
    const goneFdb = [...a.fdb.keys()].filter((mac) => !fdb.has(mac));
    if (goneFdb.length > 0) await engine.removeFdb(vni, goneFdb);
    const addNeigh = [...neigh]
      .filter(([ip, mac]) => a.neigh.get(ip) !== mac)
      .map(([ip, mac]) => ({ ip, mac }));
    if (addNeigh.length > 0) await engine.addNeigh(vni, addNeigh);
    const goneNeigh = [...a.neigh.keys()].filter((ip) => !neigh.has(ip));
    if (goneNeigh.length > 0) await engine.removeNeigh(vni, goneNeigh);
    for (const v of a.vteps) if (!vteps.has(v)) await engine.removePeer(vni, v);
    a.vteps = vteps;
    a.fdb = fdb;
    a.neigh = neigh;
  }

  /** The cluster keys changed: every key receives, `primary` sends (src/daemon/keys.ts). */
  applyKeys(keys: AppliedKeys): Promise<void> {
    return this.serial(async () => {
      this.keys = keys;
      const engine = this.engine && (await this.engine.catch(() => undefined));
      if (engine?.encryption) await engine.setKeys(keys);
    });
  }

  async fdb(ref: PortRef): Promise<FdbEntry[]> {
    const a = this.nets.get(ref.network);
    const engine = this.engine && (await this.engine.catch(() => undefined));
    if (!a?.up || !engine) return [];
    const ips = new Map(a.remotes.map((r) => [r.mac.toLowerCase(), r.ip]));
    return engine.fdb(ref.vni).map((e) => {
      const entry: FdbEntry = {
        network: ref.network,
        vni: ref.vni,
        mac: e.mac,
        vtep: e.address,
        kind: e.static ? 'static' : 'learned',
      };
      const ip = ips.get(e.mac);
      if (ip !== undefined) entry.ip = ip;
      return entry;
    });
  }

  async peers(): Promise<PeerInfo[]> {
    return peersOf([...this.nets].map(([network, a]) => [network, a.remotes] as const));
  }

  async stats(ref: PortRef): Promise<PortStats> {
    const engine = this.engine && (await this.engine.catch(() => undefined));
    const s = engine?.stats();
    const c = s?.vnis.get(ref.vni);
    const counters = c ? flatten(c) : {};
    // The ESP stage's counters are the engine's (ESP drops happen before a VNI is known).
    if (c && s?.esp && this.nets.get(ref.network)?.encrypted) {
      counters['esp.sealed'] = s.esp.sealed;
      counters['esp.opened'] = s.esp.opened;
      for (const [k, v] of Object.entries(s.esp.drops)) counters[`esp.drops.${k}`] = v;
      counters['esp.helperSlices'] = s.esp.helperSlices;
      counters['esp.helperFailed'] = s.esp.helperFailed;
    }
    return { network: ref.network, vni: ref.vni, counters };
  }

  /** Ports of networks not in `keep` go (after a crash the TAPs went with the old process). */
  sweep(keep: PortRef[]): Promise<void> {
    return this.serial(async () => {
      const vnis = new Set(keep.map((k) => k.vni));
      for (const [network, a] of this.nets) if (!vnis.has(a.ref.vni)) this.nets.delete(network);
      const engine = this.engine && (await this.engine.catch(() => undefined));
      if (!engine) return;
      for (const p of engine.portList()) if (!vnis.has(p.vni)) await engine.removePort(p.vni);
      for (const a of this.nets.values()) if (!netnsExists(a.ref.sandbox)) a.up = false;
    });
  }

  close(): Promise<void> {
    return this.serial(async () => {
      const engine = this.engine && (await this.engine.catch(() => undefined));
      this.engine = undefined;
      this.nets.clear();
      await engine?.close();
    });
  }
}

/** The counters by name, drops as `drops.<reason>`. */
function flatten(c: Counters): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(c)) {
    if (typeof v === 'number') out[k] = v;
  }
  for (const [k, v] of Object.entries(c.drops)) out[`drops.${k}`] = v;
  return out;
}
