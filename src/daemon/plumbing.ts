// The kernel objects of networks and endpoints on this host, built from their records.
//
// Owns: naming (every namespace and link name derives from the host id and record ids, so a
// restarted daemon finds exactly what it made, and several daemons on one machine -- simulated
// hosts -- never collide in /run/netns) and the idempotent ensure/remove of:
//   sandbox   vxsb-<host>-<net12>   namespace with br0 (gateway IP, overlay MTU) + the VXLAN port
//   container vxct-<host>-<ct12>    namespace; ethN: veth to vp<ep12> on the sandbox's br0
//   gateway   vxnet_gwbridge        in the daemon's namespace, 172.18.0.1/16, NAT, ports isolated;
//                                   a container's eth1 is a veth to vg<ct12> on it
// Egress goes the way Docker's overlay sends it: the container's default route is via eth1
// (172.18.0.1, masqueraded by the host); the overlay subnet is on-link on eth0, and br0's gateway
// address is the network's, reachable from the containers but not a router (the sandbox has no
// way out). An --internal network's containers have no eth1 and no default route.
// Every ensure can run again on a half-made state (a crash mid-way) and completes it; every
// remove can run twice.

import { existsSync } from 'node:fs';
import { VxError } from '../errors.js';
import { addAddr } from '../kernel/addr.js';
import { attachPort, deleteBridge, ensureBridge } from '../kernel/bridge.js';
import { ipBatch } from '../kernel/exec.js';
import { deleteLink, ensureVeth, getLink, listLinks, setLink } from '../kernel/link.js';
import { ensureGatewayNat, GATEWAY_BRIDGE, GATEWAY_SUBNET, removeGatewayNat } from '../kernel/nat.js';
import { deleteNetns, ensureNetns, netnsExists } from '../kernel/netns.js';
import { listRoutes, replaceRoute } from '../kernel/route.js';
import type { OverlayPorts, PortRef } from './ports.js';
import type { ContainerRecord, EndpointRecord, NetworkRecord } from './records.js';

export const GATEWAY_IP = '172.18.0.1';
export { GATEWAY_BRIDGE, GATEWAY_SUBNET };

const BRIDGE = 'br0';
/**
 * Overlays are IPv4: an endpoint's veth ends get no IPv6 link-local address (as Docker disables
 * IPv6 on a container's interface on a network without IPv6). Otherwise every new endpoint's DAD,
 * router solicitation and MLD report is multicast, so flooded to every host and on each to every
 * container of the network: work that grows with the square of the endpoints (bench:cp spent
 * ~10% of the machine on it at 700 endpoints). Nothing when the kernel has no IPv6 at all.
 */
const NO_IPV6: string[][] = existsSync('/proc/sys/net/ipv6') ? [['addrgenmode', 'none']] : [];

export interface PlumbingOptions {
  hostId: string;
  ports: OverlayPorts;
  /**
   * The namespace that is this host (where the gateway bridge and its NAT live); default: the
   * daemon's own. Lets several daemons run in one process in tests, each for its own host.
   */
  hostNetns?: string;
}

export class Plumbing {
  readonly hostId: string;
  /** Where host-side objects go: `{ netns: hostNetns }`, or `{}` for the daemon's own namespace. */
  readonly host: { netns?: string };
  private readonly ports: OverlayPorts;

  constructor(o: PlumbingOptions) {
    this.hostId = o.hostId;
    this.ports = o.ports;
    this.host = o.hostNetns === undefined ? {} : { netns: o.hostNetns };
  }

  sandboxName(networkId: string): string {
    return `vxsb-${this.hostId}-${networkId.slice(0, 12)}`;
  }

  containerNetns(containerId: string): string {
    return `vxct-${this.hostId}-${containerId.slice(0, 12)}`;
  }

  /** True for namespace names this host's daemon makes (and so may remove when unknown). */
  ownsNetns(name: string): boolean {
    return name.startsWith(`vxsb-${this.hostId}-`) || name.startsWith(`vxct-${this.hostId}-`);
  }

  portRef(net: NetworkRecord): PortRef {
    return { network: net.id, vni: net.vni, sandbox: this.sandboxName(net.id) };
  }

  /**
   * Sandboxes and the gateway bridge this daemon has fully ensured since it started: building
   * them is a dozen commands, re-checking them on every endpoint would be most of an endpoint's
   * cost. Forgotten when removed; a restart re-checks everything (reconcile).
   */
  private readonly ready = new Set<string>();
  /**
   * Builds in progress, by sandbox name (or GATEWAY_BRIDGE): endpoints plumbed at the same time
   * (the engine runs them concurrently) wait for the one build instead of racing it.
   */
  private readonly building = new Map<string, Promise<boolean>>();

  private once(key: string, build: () => Promise<void>): Promise<boolean> {
    const running = this.building.get(key);
    if (running) return running.then(() => false);
    const p = build().then(() => {
      this.ready.add(key);
      return true;
    });
    this.building.set(key, p);
    const done = () => {
      if (this.building.get(key) === p) this.building.delete(key);
    };
    p.then(done, done);
    return p;
  }

  /**
   * True when it (re)built the sandbox, false when it was already ensured since start (or by a
   * concurrent call). Removal (removeSandbox) must not run meanwhile: the engine's network lock.
   */
  async ensureSandbox(net: NetworkRecord, mtu: number): Promise<boolean> {
    const sandbox = this.sandboxName(net.id);
    if (this.ready.has(sandbox) && !this.building.has(sandbox) && netnsExists(sandbox)) return false;
    this.ready.delete(sandbox);
    return this.once(sandbox, async () => {
      await ensureNetns(sandbox);
      await ensureBridge(BRIDGE, { netns: sandbox, mtu });
      await addAddr(BRIDGE, `${net.gateway}/${net.subnet.split('/')[1]}`, { netns: sandbox });
      await this.ports.ensure({ ...this.portRef(net), bridge: BRIDGE, mtu, encrypted: net.encrypted });
    });
  }

  async removeSandbox(ref: PortRef): Promise<void> {
    this.ready.delete(ref.sandbox);
    await this.ports.remove(ref);
    await deleteNetns(ref.sandbox, { killProcesses: true });
  }

  /** `loopbackUp: false` when the caller brings lo up itself (plumbNew's batch): one command less. */
  async ensureContainerNetns(ct: ContainerRecord, o: { loopbackUp?: boolean } = {}): Promise<void> {
    if (ct.external) {
      if (!netnsExists(ct.netns))
        throw new VxError('ERR_NETNS_NOT_FOUND', `namespace "${ct.netns}" of container "${ct.name}" is gone`);
      return;
    }
    await ensureNetns(ct.netns, { loopbackUp: o.loopbackUp ?? true });
  }

  /**
   * A container namespace vxnet has just made, plumbed in three `ip -batch` runs (container,
   * sandbox, host) instead of some twenty commands: the common case of `run`. Any failure is
   * left to the caller, which falls back to the idempotent ensure path (it adopts what this made).
   * Resolves true when the network's sandbox was (re)built for it (it needs its remote table).
   */
  async plumbNew(ct: ContainerRecord, ep: EndpointRecord, net: NetworkRecord, mtu: number): Promise<boolean> {
    const built = await this.ensureSandbox(net, mtu);
    if (ct.gateway) await this.ensureGateway();
    const sandbox = this.sandboxName(net.id);
    const peer = `vp${ep.id.slice(0, 12)}`;
    const m = String(mtu);
    const inCt = [
      ['link', 'set', 'dev', 'lo', 'up'],
      ['link', 'add', ep.ifname, 'mtu', m, 'type', 'veth', 'peer', 'name', peer, 'netns', sandbox, 'mtu', m],
      ...NO_IPV6.map((a) => ['link', 'set', 'dev', ep.ifname, ...a]),
      ['link', 'set', 'dev', ep.ifname, 'address', ep.mac, 'up'],
      ['addr', 'add', ep.address, 'brd', '+', 'dev', ep.ifname],
    ];
    const gw = ct.gateway;
    if (gw) {
      // The host end goes to the host's namespace: by name, or by the daemon's pid when it is its own.
      const host = this.host.netns ?? String(process.pid);
      inCt.push(
        ['link', 'add', gw.ifname, 'type', 'veth', 'peer', 'name', gw.hostIf, 'netns', host],
        ['link', 'set', 'dev', gw.ifname, 'up'],
        ['addr', 'add', gw.address, 'brd', '+', 'dev', gw.ifname],
        ['route', 'replace', 'default', 'via', GATEWAY_IP, 'dev', gw.ifname],
      );
    }
    await ipBatch(inCt, { netns: ct.netns, action: `plumb container "${ct.name}"` });
    await ipBatch(
      [
        ...NO_IPV6.map((a) => ['link', 'set', 'dev', peer, ...a]),
        ['link', 'set', 'dev', peer, 'master', BRIDGE, 'up'],
      ],
      {
        netns: sandbox,
        action: `attach "${peer}" to ${BRIDGE}`,
      },
    );
    if (gw) {
      const hostCmds = [
        ['link', 'set', 'dev', gw.hostIf, 'master', GATEWAY_BRIDGE],
        ['link', 'set', 'dev', gw.hostIf, 'type', 'bridge_slave', 'isolated', 'on'],
        ['link', 'set', 'dev', gw.hostIf, 'up'],
      ];
      await ipBatch(hostCmds, { ...this.host, action: `attach "${gw.hostIf}" to ${GATEWAY_BRIDGE}` });
    }
    return built;
  }

  /** eth0 (or ethN) of an endpoint: a veth from the container to the sandbox's br0. */
  async ensureEndpoint(ct: ContainerRecord, ep: EndpointRecord, net: NetworkRecord, mtu: number) {
    await this.ensureSandbox(net, mtu);
    const sandbox = this.sandboxName(net.id);
    const peer = `vp${ep.id.slice(0, 12)}`;
    const inCt = { netns: ct.netns };
    const existing = await getLink(ep.ifname, inCt);
    if (existing && existing.kind !== 'veth')
      throw new VxError('ERR_KERNEL', `"${ep.ifname}" in namespace "${ct.netns}" exists and is not a veth`);
    if (!existing || !(await getLink(peer, { netns: sandbox }))) {
      if (existing) await deleteLink(ep.ifname, inCt);
      await deleteLink(peer, { netns: sandbox });
      await ensureVeth({ netns: ct.netns, name: ep.ifname, peer, peerNetns: sandbox, mtu });
      if (NO_IPV6.length > 0) {
        await ipBatch(
          NO_IPV6.map((a) => ['link', 'set', 'dev', ep.ifname, ...a]),
          { ...inCt, action: `turn IPv6 off on "${ep.ifname}"` },
        );
        await ipBatch(
          NO_IPV6.map((a) => ['link', 'set', 'dev', peer, ...a]),
          { netns: sandbox, action: `turn IPv6 off on "${peer}"` },
        );
      }
    }
    await setLink(ep.ifname, { ...inCt, mtu, mac: ep.mac, up: true });
    await addAddr(ep.ifname, ep.address, inCt);
    await setLink(peer, { netns: sandbox, mtu });
    await attachPort(BRIDGE, peer, { netns: sandbox });
  }

  /**
   * Removes an endpoint's veth. Deleting one end of a veth deletes both, so one command: the
   * sandbox's end, or the container's when the sandbox is gone. Can run twice.
   */
  async removeEndpoint(ct: ContainerRecord, ep: EndpointRecord): Promise<void> {
    const sandbox = this.sandboxName(ep.networkId);
    if (netnsExists(sandbox)) await deleteLink(`vp${ep.id.slice(0, 12)}`, { netns: sandbox });
    else if (netnsExists(ct.netns)) await deleteLink(ep.ifname, { netns: ct.netns });
  }

  async ensureGateway(): Promise<void> {
    if (this.ready.has(GATEWAY_BRIDGE) && !this.building.has(GATEWAY_BRIDGE)) return;
    await this.once(GATEWAY_BRIDGE, async () => {
      await ensureBridge(GATEWAY_BRIDGE, this.host);
      await addAddr(GATEWAY_BRIDGE, `${GATEWAY_IP}/16`, this.host);
      await ensureGatewayNat(this.host);
    });
  }

  async removeGateway(): Promise<void> {
    this.ready.delete(GATEWAY_BRIDGE);
    await removeGatewayNat(this.host);
    await deleteBridge(GATEWAY_BRIDGE, this.host);
  }

  /** The container's eth1 on the gateway bridge, isolated from the other containers' ports. */
  async ensureGatewayLink(ct: ContainerRecord): Promise<void> {
    const gw = ct.gateway;
    if (!gw) return;
    await this.ensureGateway();
    const inCt = { netns: ct.netns };
    if (!(await getLink(gw.ifname, inCt)) || !(await getLink(gw.hostIf, this.host))) {
      await deleteLink(gw.ifname, inCt);
      await deleteLink(gw.hostIf, this.host);
      await ensureVeth({ ...this.host, name: gw.hostIf, peer: gw.ifname, peerNetns: ct.netns });
    }
    await setLink(gw.ifname, { ...inCt, up: true });
    await addAddr(gw.ifname, gw.address, inCt);
    await attachPort(GATEWAY_BRIDGE, gw.hostIf, { ...this.host, isolated: true });
    // A namespace made elsewhere keeps a default route it already has (its runtime's egress).
    const routes = ct.external ? await listRoutes({ netns: ct.netns }) : [];
    const foreign = routes.some((r) => r.dst === 'default' && r.dev !== gw.ifname);
    if (!foreign) await replaceRoute({ netns: ct.netns, dst: 'default', via: GATEWAY_IP, dev: gw.ifname });
  }

  async removeGatewayLink(ct: ContainerRecord): Promise<void> {
    if (!ct.gateway) return;
    // The host's end; the container's goes with it (a veth pair dies whole).
    await deleteLink(ct.gateway.hostIf, this.host);
  }

  /** Host-side gateway ports (vg...) in the daemon's namespace. */
  async gatewayPorts(): Promise<string[]> {
    return (await listLinks(this.host)).map((l) => l.name).filter((n) => /^vg[0-9a-f]{12}$/.test(n));
  }

  /** Interface names a new endpoint may not take in `netns` (those in use). */
  async linkNames(netns: string): Promise<Set<string>> {
    return new Set((await listLinks({ netns })).map((l) => l.name));
  }
}

export function gatewayHostIf(containerId: string): string {
  return `vg${containerId.slice(0, 12)}`;
}
