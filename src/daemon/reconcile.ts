// Reconciliation on start: make this host's kernel match the store, after a clean stop or a
// `kill -9` at any instant.
//
// Owns: the one pass that decides, for everything vxnet may have left behind, adopt or remove:
//   - networks stuck in 'deleting' (a crash inside `network rm`): finished, or reverted to active
//     when endpoints appeared;
//   - containers stuck in 'creating' or 'removing' (never acknowledged / half removed): removed;
//     others: plumbing re-ensured (adopting what is there, completing what is half made), their
//     process adopted when it is still the same process in the same namespace, else 'exited';
//   - endpoints whose record is gone while their container stays (`network rm --force` /
//     `disconnect --force` of this host while it was dead, orphans.ts): their veth is removed,
//     their sandbox too when no endpoint of this host is left on it (below);
//   - namespaces named for this host that no record explains, and stray processes in them;
//   - gateway-bridge ports (vg...) no container owns; the VXLAN ports' own leftovers (sweep);
//   - addresses and VNIs whose owner record is gone.
// Names carry the host id (plumbing.ts), so a daemon never touches another simulated host's
// objects on the same machine.

import { deleteLink, listLinks } from '../kernel/link.js';
import { deleteNetns, listNetns, netnsExists } from '../kernel/netns.js';
import type { Engine } from './engine.js';
import { GATEWAY_SUBNET } from './plumbing.js';
import { isAlive } from './procs.js';
import {
  type ContainerRecord,
  hostPrefix,
  IPAM_PREFIX,
  type NetworkRecord,
  networkKey,
  VNI_PREFIX,
} from './records.js';

export interface ReconcileReport {
  adopted: string[];
  removed: string[];
  exited: string[];
  namespacesRemoved: string[];
  linksRemoved: string[];
  addressesReleased: number;
  logsRemoved: number;
}

/** A report of nothing done (what a daemon shows before its first reconcile). */
export function emptyReport(): ReconcileReport {
  return {
    adopted: [],
    removed: [],
    exited: [],
    namespacesRemoved: [],
    linksRemoved: [],
    addressesReleased: 0,
    logsRemoved: 0,
  };
}

export async function reconcile(engine: Engine): Promise<ReconcileReport> {
  const report = emptyReport();
  await finishNetworkRemovals(engine);
  for (const ct of await engine.listContainers()) await reconcileContainer(engine, ct, report);
  await removeStaleEndpoints(engine, report);
  await removeUnknownNamespaces(engine, report);
  await removeUnknownLinks(engine, report);
  await sweepAllocations(engine, report);
  report.logsRemoved = await engine.sweepLogs();
  await engine.collect();
  engine.log.info(report, 'reconciled kernel with store');
  return report;
}

async function finishNetworkRemovals(engine: Engine): Promise<void> {
  for (const net of await engine.listNetworks()) {
    if (net.state !== 'deleting') continue;
    if ((await engine.endpointsOf(net.id)).length > 0) {
      await engine.store.put(networkKey(net.name), JSON.stringify({ ...net, state: 'active' }));
    } else await engine.finishNetworkRemoval(net);
  }
}

async function reconcileContainer(
  engine: Engine,
  ct: ContainerRecord,
  report: ReconcileReport,
): Promise<void> {
  const gone = ct.external && !netnsExists(ct.netns);
  if (ct.state === 'creating' || ct.state === 'removing' || gone) {
    await engine.teardown(ct);
    report.removed.push(ct.name);
    return;
  }
  try {
    await engine.plumbContainer(ct);
  } catch (e) {
    engine.log.error({ err: e, container: ct.name }, 'could not restore plumbing');
  }
  for (const pid of await engine.strayPids(ct)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
  if (ct.state === 'running' && !(ct.pid !== undefined && isAlive(ct.pid, ct.pidStart ?? 0, ct.netns))) {
    await engine.updateContainer(ct.name, (c) => ({ ...c, state: 'exited', exitCode: null }));
    report.exited.push(ct.name);
  } else {
    // Its exit is seen by polling: this daemon is not its parent.
    engine.adopt(ct);
    report.adopted.push(ct.name);
  }
}

/**
 * The veths of endpoints no record names any more: a sandbox's ports (vp<ep12>) that are no
 * endpoint of this host's containers, and in a namespace vxnet made, ethN veths that are none of
 * its container's interfaces (a veth pair dies whole, so one end each). A namespace made
 * elsewhere (external) is left alone but for the sandbox end.
 */
async function removeStaleEndpoints(engine: Engine, report: ReconcileReport): Promise<void> {
  const containers = (await engine.listContainers()).filter((c) => netnsExists(c.netns));
  const ports = new Set<string>();
  const ifnames = new Map<string, Set<string>>();
  for (const ct of containers) {
    const names = new Set<string>(ct.gateway ? [ct.gateway.ifname] : []);
    for (const ep of await engine.containerEndpoints(ct)) {
      ports.add(`vp${ep.id.slice(0, 12)}`);
      names.add(ep.ifname);
    }
    ifnames.set(ct.name, names);
  }
  const sandboxes = (await listNetns()).filter((ns) => ns.startsWith(engine.plumbing.sandboxName('')));
  for (const sandbox of sandboxes) {
    for (const link of await listLinks({ netns: sandbox })) {
      if (!/^vp[0-9a-f]{12}$/.test(link.name) || ports.has(link.name)) continue;
      await deleteLink(link.name, { netns: sandbox });
      report.linksRemoved.push(`${sandbox}/${link.name}`);
    }
  }
  for (const ct of containers) {
    if (ct.external) continue;
    const keep = ifnames.get(ct.name) ?? new Set();
    for (const link of await listLinks({ netns: ct.netns })) {
      if (link.kind !== 'veth' || !/^eth\d+$/.test(link.name) || keep.has(link.name)) continue;
      await deleteLink(link.name, { netns: ct.netns });
      report.linksRemoved.push(`${ct.netns}/${link.name}`);
    }
  }
}

async function removeUnknownNamespaces(engine: Engine, report: ReconcileReport): Promise<void> {
  const containers = await engine.listContainers();
  const networks = await engine.listNetworks();
  const wanted = new Set(containers.filter((c) => !c.external).map((c) => c.netns));
  const used = new Set(containers.flatMap((c) => Object.keys(c.endpoints)));
  for (const n of networks) if (used.has(n.id)) wanted.add(engine.plumbing.sandboxName(n.id));
  const byName = new Map<string, NetworkRecord>(networks.map((n) => [engine.plumbing.sandboxName(n.id), n]));
  for (const ns of [...(await listNetns()), ...(await listNetns({ stale: true }))]) {
    if (!engine.plumbing.ownsNetns(ns) || wanted.has(ns)) continue;
    const net = byName.get(ns);
    if (net) await engine.plumbing.removeSandbox(engine.plumbing.portRef(net));
    else await deleteNetns(ns, { killProcesses: true });
    report.namespacesRemoved.push(ns);
  }
  const keep = networks.filter((n) => used.has(n.id)).map((n) => engine.plumbing.portRef(n));
  await engine.ports.sweep(keep);
}

async function removeUnknownLinks(engine: Engine, report: ReconcileReport): Promise<void> {
  const owned = new Set((await engine.listContainers()).map((c) => c.gateway?.hostIf).filter(Boolean));
  for (const port of await engine.plumbing.gatewayPorts()) {
    if (owned.has(port)) continue;
    await deleteLink(port, engine.plumbing.host);
    report.linksRemoved.push(port);
  }
}

/** Addresses and VNIs whose owner record no longer exists (a crash between delete and release). */
async function sweepAllocations(engine: Engine, report: ReconcileReport): Promise<void> {
  const networks = await engine.listNetworks();
  for (const net of networks) {
    const owners = new Set((await engine.endpointsOf(net.id)).map((e) => e.id));
    for (const { ip, owner } of await engine.ipam.listIps(net.subnet)) {
      if (owners.has(owner)) continue;
      await engine.releaseIfOwner(IPAM_PREFIX, net.subnet, ip, owner);
      report.addressesReleased++;
    }
  }
  const cts = new Set((await engine.listContainers()).map((c) => c.id));
  if (await engine.gwIpam.getSubnet(GATEWAY_SUBNET)) {
    for (const { ip, owner } of await engine.gwIpam.listIps(GATEWAY_SUBNET)) {
      if (cts.has(owner)) continue;
      await engine.releaseIfOwner(`${hostPrefix(engine.hostId)}gw/`, GATEWAY_SUBNET, ip, owner);
      report.addressesReleased++;
    }
  }
  const ids = new Set(networks.map((n) => n.id));
  for (const { vni, owner } of await engine.vnis.list()) {
    if (ids.has(owner)) continue;
    const key = `${VNI_PREFIX}${vni}`;
    await engine.store.txn({ compare: [{ key, value: owner }], success: [{ type: 'delete', key }] });
  }
}
