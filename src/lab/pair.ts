// Two simulated hosts on one machine, for the datapath tests and bench:e2e.
//
//   [c1] eth0 10.77.0.1 --veth-- br0 [h1] ul 192.168.77.1 ==veth underlay== ul 192.168.77.2 [h2] br0 --veth-- eth0 10.77.0.2 [c2]
//                                 |                                                            |
//                             VXLAN port                                                   VXLAN port
//
// Each host and container is a network namespace created here (names carry a random suffix), so
// everything the pair sends stays inside namespaces it made. A host's VXLAN port is either the
// Linux kernel's `vxlan` device (the reference) or left for the caller to attach (vxnet's TAP).
// `destroy()` kills what runs in the namespaces and removes them; it can run twice.
import { randomBytes } from 'node:crypto';
import { VXLAN_PORT } from '../../assembly/constants.js';
import { addAddr } from '../kernel/addr.js';
import { attachPort, ensureBridge } from '../kernel/bridge.js';
import { ip, run } from '../kernel/exec.js';
import { ensureVeth, setLink } from '../kernel/link.js';
import { deleteNetns, ensureNetns } from '../kernel/netns.js';

export type VtepKind = 'kernel' | 'none';

export interface PairOptions {
  vni?: number;
  port?: number;
  /** Overlay MTU on the containers and br0 (default 1450; 1430 on an IPv6 underlay: 20 bytes more of outer header). */
  mtu?: number;
  /** The VXLAN port of each host: the kernel's vxlan device, or none (the caller adds one). */
  vtep?: [VtepKind, VtepKind];
  /** Use an IPv6 underlay (fd77::1/2) instead of IPv4. */
  ipv6?: boolean;
  /**
   * IPv6 underlay only: the kernel's vxlan devices send zero UDP checksums and accept them
   * (udp6zerocsumtx/rx, default true). False keeps Linux's default: checksummed, zero refused.
   */
  udp6ZeroCsum?: boolean;
}

export interface Host {
  ns: string;
  container: string;
  underlayIp: string;
  overlayIp: string;
  /** The host's underlay device (inside `ns`). */
  underlayDev: string;
}

export interface Pair {
  hosts: [Host, Host];
  vni: number;
  port: number;
  mtu: number;
  /** Further namespaces made for this pair (addStranger); destroy() removes them too. */
  extra: string[];
  destroy(): Promise<void>;
}

export async function createPair(o: PairOptions = {}): Promise<Pair> {
  const id = randomBytes(3).toString('hex');
  const vni = o.vni ?? 256;
  const port = o.port ?? VXLAN_PORT;
  const v6 = o.ipv6 ?? false;
  const mtu = o.mtu ?? (v6 ? 1430 : 1450);
  const hosts: [Host, Host] = [1, 2].map((i) => ({
    ns: `vxh${i}-${id}`,
    container: `vxc${i}-${id}`,
    underlayIp: v6 ? `fd77::${i}` : `192.168.77.${i}`,
    overlayIp: `10.77.0.${i}`,
    underlayDev: 'ul0',
  })) as [Host, Host];
  const pair: Pair = {
    hosts,
    vni,
    port,
    mtu,
    extra: [],
    async destroy() {
      for (const ns of pair.extra) await deleteNetns(ns, { killProcesses: true });
      for (const h of hosts) {
        await deleteNetns(h.container, { killProcesses: true });
        await deleteNetns(h.ns, { killProcesses: true });
      }
    },
  };
  try {
    for (const h of hosts) {
      await ensureNetns(h.ns);
      await ensureNetns(h.container);
    }
    await ensureVeth({ name: 'ul0', peer: 'ul0p', netns: hosts[0].ns, peerNetns: hosts[1].ns });
    await ip(['link', 'set', 'dev', 'ul0p', 'name', 'ul0'], { netns: hosts[1].ns, action: 'rename ul0p' });
    for (const [i, h] of hosts.entries()) {
      await setLink('ul0', { netns: h.ns, up: true });
      await addUnderlayAddr(h, v6);
      await ensureBridge('br0', { netns: h.ns, mtu });
      await ensureVeth({ name: `c${i + 1}p`, peer: 'eth0', netns: h.ns, peerNetns: h.container, mtu });
      await attachPort('br0', `c${i + 1}p`, { netns: h.ns });
      await setLink('eth0', { netns: h.container, up: true, mac: overlayMac(h.overlayIp) });
      await addAddr('eth0', `${h.overlayIp}/24`, { netns: h.container });
    }
    const kinds = o.vtep ?? ['kernel', 'kernel'];
    for (const [i, h] of hosts.entries()) {
      // Checksums are finished on the underlay only for a userspace peer: between two kernel
      // devices they stay offloaded, as a NIC would finish them (the fair baseline for bench:e2e).
      const finishChecksums = kinds[1 - i] !== 'kernel';
      if (kinds[i] === 'kernel')
        await addKernelVxlan(h, hosts[1 - i]!, {
          vni,
          port,
          mtu,
          udp6ZeroCsum: o.udp6ZeroCsum,
          finishChecksums,
        });
    }
    if (v6) await waitDad(hosts);
  } catch (e) {
    await pair.destroy();
    throw e;
  }
  return pair;
}

/** The container MAC the way Docker derives it: 02:42 + the four bytes of the IPv4 address. */
export function overlayMac(ipv4: string): string {
  const b = ipv4.split('.').map((x) => Number(x).toString(16).padStart(2, '0'));
  return `02:42:${b.join(':')}`;
}

async function addUnderlayAddr(h: Host, v6: boolean): Promise<void> {
  if (!v6) return addAddr('ul0', `${h.underlayIp}/24`, { netns: h.ns });
  await ip(['addr', 'add', `${h.underlayIp}/64`, 'dev', 'ul0', 'nodad'], {
    netns: h.ns,
    action: 'add v6 underlay address',
  });
}

async function waitDad(hosts: Host[]): Promise<void> {
  for (const h of hosts) {
    for (let i = 0; i < 50; i++) {
      const out = await ip(['-6', 'addr', 'show', 'dev', 'ul0', 'tentative'], { netns: h.ns, action: 'dad' });
      if (out.trim() === '') break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * The Linux kernel's VXLAN device as host `h`'s VXLAN port towards `peer`: static flooding entry
 * to the peer, no learning from the underlay, checksums finished on the underlay unless told not to
 * (FACTS.md: a veth keeps them partial, which a userspace peer would pass on unfinished).
 */
export async function addKernelVxlan(
  h: Host,
  peer: Host,
  o: {
    vni: number;
    port: number;
    mtu: number;
    name?: string;
    udp6ZeroCsum?: boolean;
    /** `ethtool -K ul0 tx off` (default true): needed when the peer is a userspace endpoint. */
    finishChecksums?: boolean;
  },
): Promise<void> {
  const name = o.name ?? 'vxlan0';
  const at = { netns: h.ns, action: `add kernel vxlan "${name}"` };
  await ip(
    [
      'link',
      'add',
      name,
      'type',
      'vxlan',
      'id',
      String(o.vni),
      'local',
      h.underlayIp,
      'dstport',
      String(o.port),
      'nolearning',
      ...(h.underlayIp.includes(':') && (o.udp6ZeroCsum ?? true) ? ['udp6zerocsumtx', 'udp6zerocsumrx'] : []),
    ],
    at,
  );
  await ip(['link', 'set', 'dev', name, 'mtu', String(o.mtu)], at);
  await ip(['link', 'set', 'dev', name, 'master', 'br0', 'up'], at);
  await run('bridge', ['fdb', 'append', '00:00:00:00:00:00', 'dev', name, 'dst', peer.underlayIp], at);
  if (o.finishChecksums ?? true)
    await run('ethtool', ['-K', 'ul0', 'tx', 'off'], { netns: h.ns, action: 'finish underlay checksums' });
}

/** A namespace outside the pair that can reach host `i`'s underlay address (addStranger). */
export interface Stranger {
  ns: string;
  /** Its own address: on the underlay's family, in no host's peer list. */
  ip: string;
}

/**
 * A third namespace wired to host `i` by its own veth (192.168.78.0/24 or fd78::/64) with a route
 * to the underlay prefix: it can send to host `i`'s underlay address from an address that is not a
 * peer's. Removed by the pair's destroy().
 */
export async function addStranger(pair: Pair, i: 0 | 1): Promise<Stranger> {
  const h = pair.hosts[i];
  const v6 = h.underlayIp.includes(':');
  const ns = `vxx${i + 1}-${h.ns.slice(h.ns.indexOf('-') + 1)}`;
  pair.extra.push(ns);
  await ensureNetns(ns);
  await ensureVeth({ name: 'st0', peer: 'eth0', netns: h.ns, peerNetns: ns });
  await setLink('st0', { netns: h.ns, up: true });
  await setLink('eth0', { netns: ns, up: true });
  const [hostIp, ip6, len, prefix] = v6
    ? ['fd78::1', 'fd78::2', 64, 'fd77::/64']
    : ['192.168.78.1', '192.168.78.2', 24, '192.168.77.0/24'];
  const nodad = v6 ? ['nodad'] : [];
  await ip(['addr', 'add', `${hostIp}/${len}`, 'dev', 'st0', ...nodad], {
    netns: h.ns,
    action: 'address st0',
  });
  await ip(['addr', 'add', `${ip6}/${len}`, 'dev', 'eth0', ...nodad], { netns: ns, action: 'address eth0' });
  await ip(['route', 'add', prefix, 'via', hostIp], { netns: ns, action: 'route to the underlay' });
  return { ns, ip: ip6 };
}
