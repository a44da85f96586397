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

export const NETWORKS = '/vxnet/networks/';
export const ENDPOINTS = '/vxnet/endpoints/';
export const CONTAINERS = '/vxnet/containers/';
export const IPAM_PREFIX = '/vxnet/ipam/';
export const VNI_PREFIX = '/vxnet/vni/';

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

export const networkKey = (name: string) => NETWORKS + name;
export const containerKey = (name: string) => CONTAINERS + name;
export const endpointKey = (networkId: string, endpointId: string) =>
  `${ENDPOINTS}${networkId}/${endpointId}`;
export const endpointsOf = (networkId: string) => `${ENDPOINTS}${networkId}/`;
