// Endpoints left behind by dead hosts, and the operator's way out (`--force`), as Docker's
// `network disconnect --force` / stale-endpoint cleanup.
//
// Owns: deciding which hosts are dead (no /vxnet/members/<host> record: its membership lease
// expired, membership.ts), the ERR_NETWORK_IN_USE message that names each endpoint with its host
// and says which hosts are dead, and removing a dead host's endpoint record from the store.
// Why shaped so:
// - A dead host's peer records vanish with its lease, but its endpoint records are durable (they
//   hold the allocation its restart adopts), so they keep `network rm` refused until it returns.
//   The operator may remove them; only those of dead hosts, never a live host's (that host owns
//   its kernel objects and would be left with an endpoint the store no longer knows).
// - The removal is one transaction that holds only while the host's member record is absent
//   (and the records unchanged), so a host coming back at that moment keeps its endpoint.
// - The container record (also the dead host's) loses the network from its `endpoints`, so a
//   restarted host's reconcile sees a container that is no longer on it; the namespace's
//   interface on the dead host is its own to clean up when it returns (reconcile.ts).

import { VxError } from '../errors.js';
import type { Compare, Op, Store } from '../store/store.js';
import {
  type ContainerRecord,
  containerKey,
  type EndpointRecord,
  endpointKey,
  MEMBERS,
  memberKey,
  type NetworkRecord,
} from './records.js';

/** Hosts with a live membership (a member record on their lease); `self` always counts as live. */
export async function liveHosts(store: Store, self: string): Promise<Set<string>> {
  const { kvs } = await store.list(MEMBERS);
  return new Set([self, ...kvs.map((kv) => kv.key.slice(MEMBERS.length))]);
}

/** `network rm` refused: each endpoint with its host, dead hosts marked, and what --force would do. */
export function inUseError(net: NetworkRecord, eps: EndpointRecord[], live: Set<string>): VxError {
  const dead = [...new Set(eps.filter((e) => !live.has(e.host)).map((e) => e.host))].sort();
  const list = eps
    .map((e) => `${e.container} on ${e.host}${live.has(e.host) ? '' : ' (dead)'}`)
    .sort()
    .join(', ');
  const hint =
    dead.length === 0
      ? ''
      : `; host${dead.length > 1 ? 's' : ''} ${dead.join(', ')} ${dead.length > 1 ? 'are' : 'is'} dead (no ` +
        `membership lease): \`network rm --force\` removes their endpoints, or \`network disconnect --force ` +
        `${net.name} CONTAINER\` one of them`;
  return new VxError('ERR_NETWORK_IN_USE', `network "${net.name}" has active endpoints: ${list}${hint}`);
}

/**
 * Removes the endpoint record of a dead host (and the network from its container's record).
 * False when the host is alive (or came back meanwhile) or the records changed: nothing removed.
 */
export async function removeDeadEndpoint(store: Store, ep: EndpointRecord): Promise<boolean> {
  const epKey = endpointKey(ep.networkId, ep.id);
  for (let tries = 0; tries < 8; tries++) {
    const kv = await store.get(epKey);
    if (!kv) return true;
    const compare: Compare[] = [
      { key: memberKey(ep.host), absent: true },
      { key: epKey, modRevision: kv.modRevision },
    ];
    const success: Op[] = [{ type: 'delete', key: epKey }];
    const ctKv = await store.get(containerKey(ep.container));
    const ct = ctKv && (JSON.parse(ctKv.value) as ContainerRecord);
    if (ctKv && ct && ct.id === ep.containerId && ct.endpoints[ep.networkId] === ep.id) {
      const endpoints = { ...ct.endpoints };
      delete endpoints[ep.networkId];
      compare.push({ key: ctKv.key, modRevision: ctKv.modRevision });
      success.push({ type: 'put', key: ctKv.key, value: JSON.stringify({ ...ct, endpoints }) });
    }
    const r = await store.txn({ compare, success });
    if (r.succeeded) return true;
    if (await store.get(memberKey(ep.host))) return false;
  }
  return false;
}

/** `network rm --force`: removes the endpoints of dead hosts; returns those left (live hosts'). */
export async function removeDeadEndpoints(
  store: Store,
  self: string,
  eps: EndpointRecord[],
): Promise<EndpointRecord[]> {
  const live = await liveHosts(store, self);
  const left: EndpointRecord[] = [];
  for (const ep of eps) if (live.has(ep.host) || !(await removeDeadEndpoint(store, ep))) left.push(ep);
  return left;
}

/**
 * `network disconnect --force NET CONTAINER` for a container of another host: removes its
 * endpoint (and releases its address) when that host is dead. False when the container is this
 * host's, or is named by id: the caller disconnects it the ordinary way. A live other host's
 * container is refused with ERR_HOST_ALIVE.
 */
export async function disconnectDead(
  o: { store: Store; hostId: string; releaseIp(subnet: string, ip: string): Promise<void> },
  net: NetworkRecord,
  container: string,
): Promise<boolean> {
  const kv = await o.store.get(containerKey(container));
  const ct = kv && (JSON.parse(kv.value) as ContainerRecord);
  if (!kv || !ct || ct.host === o.hostId) return false;
  const epId = ct.endpoints[net.id];
  if (!epId)
    throw new VxError('ERR_ENDPOINT_NOT_FOUND', `container "${ct.name}" is not on network "${net.name}"`);
  const alive = () =>
    new VxError(
      'ERR_HOST_ALIVE',
      `container "${ct.name}" is on host ${ct.host}, which is alive: disconnect it there (vxnet -H ...)`,
    );
  if ((await liveHosts(o.store, o.hostId)).has(ct.host)) throw alive();
  const epKv = await o.store.get(endpointKey(net.id, epId));
  if (!epKv) {
    // Only the container record still names the network.
    const endpoints = { ...ct.endpoints };
    delete endpoints[net.id];
    await o.store.txn({
      compare: [{ key: kv.key, modRevision: kv.modRevision }],
      success: [{ type: 'put', key: kv.key, value: JSON.stringify({ ...ct, endpoints }) }],
    });
    return true;
  }
  const ep = JSON.parse(epKv.value) as EndpointRecord;
  if (!(await removeDeadEndpoint(o.store, ep))) throw alive();
  await o.releaseIp(ep.subnet, ep.ip);
  return true;
}
