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

import { VxError } from '../errors.js';
import { addAddr } from '../kernel/addr.js';
import { attachPort, deleteBridge, ensureBridge } from '../kernel/bridge.js';
import { deleteLink, ensureVeth, getLink, listLinks, setLink } from '../kernel/link.js';
import { ensureGatewayNat, GATEWAY_BRIDGE, GATEWAY_SUBNET, removeGatewayNat } from '../kernel/nat.js';
import { deleteNetns, ensureNetns, netnsExists } from '../kernel/netns.js';
import { replaceRoute } from '../kernel/route.js';
import type { OverlayPorts, PortRef } from './ports.js';
import type { ContainerRecord, EndpointRecord, NetworkRecord } from './records.js';

export const GATEWAY_IP = '172.18.0.1';
export { GATEWAY_BRIDGE, GATEWAY_SUBNET };

const BRIDGE = 'br0';

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

  async ensureSandbox(net: NetworkRecord, mtu: number): Promise<void> {
    const sandbox = this.sandboxName(net.id);
    await ensureNetns(sandbox);
    await ensureBridge(BRIDGE, { netns: sandbox, mtu });
    await addAddr(BRIDGE, `${net.gateway}/${net.subnet.split('/')[1]}`, { netns: sandbox });
    await this.ports.ensure({ ...this.portRef(net), bridge: BRIDGE, mtu, encrypted: net.encrypted });
  }

  async removeSandbox(ref: PortRef): Promise<void> {
    await this.ports.remove(ref);
    await deleteNetns(ref.sandbox, { killProcesses: true });
  }

  async ensureContainerNetns(ct: ContainerRecord): Promise<void> {
    if (ct.external) {
      if (!netnsExists(ct.netns))
        throw new VxError('ERR_NETNS_NOT_FOUND', `namespace "${ct.netns}" of container "${ct.name}" is gone`);
      return;
    }
    await ensureNetns(ct.netns);
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
    }
    await setLink(ep.ifname, { ...inCt, mtu, mac: ep.mac, up: true });
    await addAddr(ep.ifname, ep.address, inCt);
    await setLink(peer, { netns: sandbox, mtu });
    await attachPort(BRIDGE, peer, { netns: sandbox });
  }

  /** Removes an endpoint's veth (both ends). Can run twice; the namespace may be gone. */
  async removeEndpoint(ct: ContainerRecord, ep: EndpointRecord): Promise<void> {
    if (netnsExists(ct.netns)) await deleteLink(ep.ifname, { netns: ct.netns });
    const sandbox = this.sandboxName(ep.networkId);
    if (netnsExists(sandbox)) await deleteLink(`vp${ep.id.slice(0, 12)}`, { netns: sandbox });
  }

  async ensureGateway(): Promise<void> {
    await ensureBridge(GATEWAY_BRIDGE, this.host);
    await addAddr(GATEWAY_BRIDGE, `${GATEWAY_IP}/16`, this.host);
    await ensureGatewayNat(this.host);
  }

  async removeGateway(): Promise<void> {
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
    await replaceRoute({ netns: ct.netns, dst: 'default', via: GATEWAY_IP, dev: gw.ifname });
  }

  async removeGatewayLink(ct: ContainerRecord): Promise<void> {
    if (!ct.gateway) return;
    await deleteLink(ct.gateway.hostIf, this.host);
    if (netnsExists(ct.netns)) await deleteLink(ct.gateway.ifname, { netns: ct.netns });
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
