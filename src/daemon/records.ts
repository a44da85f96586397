// What the daemon keeps in the cluster store, and where: the key layout shared by every host.
//
// Owns: the record types and their keys. Everything a host must agree on with other hosts
// (networks, endpoints, container names, IPAM, VNIs) lives under /vxnet/ in the store, written by
// transactions; what only one host cares about lives under /vxnet/hosts/<hostId>/. With the
// embedded store this is one host's database; with etcd (issue 6) the same keys are shared, so
// only the Store changes.
//
//   /vxnet/networks/<name>                    NetworkRecord (the name is the unique key)
//   /vxnet/endpoints/<networkId>/<endpointId> EndpointRecord: (IP, MAC, host) -- what peers watch
//   /vxnet/containers/<name>                  ContainerRecord (names unique across hosts: they
//                                             are DNS names on the overlay)
//   /vxnet/ipam/...                           Ipam (subnets, overlay addresses; owner = endpoint id)
//   /vxnet/vni/<vni>                          VniAllocator (owner = network id)
//   /vxnet/hosts/<hostId>/gw/...              Ipam of the host's gateway bridge (owner = container id)
//   /vxnet/members/<hostId>                   MemberRecord, on the host's lease (membership.ts)
//   /vxnet/peers/<networkId>/<endpointId>     PeerRecord: (IP, MAC, tunnel endpoint) of an endpoint,
//                                             on its host's lease -- what peers.ts watches

export const NETWORKS = '/vxnet/networks/';
export const ENDPOINTS = '/vxnet/endpoints/';
export const CONTAINERS = '/vxnet/containers/';
export const IPAM_PREFIX = '/vxnet/ipam/';
export const VNI_PREFIX = '/vxnet/vni/';
export const MEMBERS = '/vxnet/members/';
export const PEERS = '/vxnet/peers/';

export function hostPrefix(hostId: string): string {
  return `/vxnet/hosts/${hostId}/`;
}

export interface NetworkRecord {
  id: string;
  name: string;
  driver: 'overlay';
  vni: number;
  subnet: string;
  gateway: string;
  ipRange?: string;
  /** The mtu option; absent: detected on each host (underlay - 50). */
  mtu?: number;
  internal: boolean;
  attachable: boolean;
  encrypted: boolean;
  labels: Record<string, string>;
  options: Record<string, string>;
  created: string;
  /** 'deleting' while `network rm` checks for endpoints; a restart finishes or reverts it. */
  state: 'active' | 'deleting';
}

export interface EndpointRecord {
  id: string;
  networkId: string;
  network: string;
  containerId: string;
  container: string;
  host: string;
  /** The network's subnet, so the address can be released without the network record. */
  subnet: string;
  ip: string;
  /** ip/prefix. */
  address: string;
  mac: string;
  /** Interface name inside the container (eth0, eth2, ...). */
  ifname: string;
  aliases: string[];
  /** Underlay address of the host (issue 6's tunnel endpoint); absent on a single host. */
  vtep?: string;
}

export interface GatewayLink {
  /** Interface name inside the container (eth1 in namespaces vxnet made). */
  ifname: string;
  ip: string;
  address: string;
  /** The host-side end of the veth, a port of vxnet_gwbridge. */
  hostIf: string;
}

export type ContainerState = 'creating' | 'created' | 'running' | 'exited' | 'removing';

export interface ContainerRecord {
  id: string;
  name: string;
  host: string;
  netns: string;
  /** The namespace was made elsewhere (`attach`): vxnet adds and removes only its interfaces. */
  external: boolean;
  cmd: string[];
  state: ContainerState;
  pid?: number;
  /** /proc/<pid>/stat start time, so a reused pid is not mistaken for the container's process. */
  pidStart?: number;
  exitCode?: number | null;
  created: string;
  /** Endpoint ids by network id. */
  endpoints: Record<string, string>;
  /** eth1 on the gateway bridge; absent while every network is --internal. */
  gateway?: GatewayLink;
}

/** A live host: written on the host's lease, so it disappears when the host stops renewing it. */
export interface MemberRecord {
  host: string;
  /** The host's tunnel endpoint (--cluster-advertise). */
  vtep?: string;
  /** The lease's TTL in seconds. */
  ttl: number;
  /** When this daemon run joined (ISO time). */
  since: string;
}

/** What a host publishes of each of its endpoints, on its lease: all other hosts need to forward. */
export interface PeerRecord {
  host: string;
  networkId: string;
  endpointId: string;
  ip: string;
  mac: string;
  /** Underlay address of the host; absent on a single host without --cluster-advertise. */
  vtep?: string;
}

export const memberKey = (hostId: string) => MEMBERS + hostId;
export const peerKey = (networkId: string, endpointId: string) => `${PEERS}${networkId}/${endpointId}`;
export const networkKey = (name: string) => NETWORKS + name;
export const containerKey = (name: string) => CONTAINERS + name;
export const endpointKey = (networkId: string, endpointId: string) =>
  `${ENDPOINTS}${networkId}/${endpointId}`;
export const endpointsOf = (networkId: string) => `${ENDPOINTS}${networkId}/`;
