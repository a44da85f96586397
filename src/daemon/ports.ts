// The VXLAN port seam: what the daemon asks of whatever carries a network's frames between hosts.
//
// Owns: the interface only. The daemon builds a network's sandbox (namespace + br0) and then asks
// the port implementation to put its VXLAN port on br0; it never touches the tunnel itself. Two
// implementations plug in: vxnet's userspace TAP datapath (`TapPorts`, the product and the
// default) and `KernelVxlanPorts` (the Linux `vxlan` device, `--vxlan-port kernel`: the reference
// the datapath is cross-checked against).
// Diagnostics (`fdb show`, `peers`, `stats`) return what the implementation reports, unchanged in
// shape, so the CLI shows the datapath's own view. Remote endpoints (issue 6) come through
// `setRemotes`, one whole table per network, so one serialised applier can diff it.

import type { AppliedKeys } from './keys.js';

export interface PortSpec {
  /** The network's id (stable across renames and restarts). */
  network: string;
  vni: number;
  /** The network's sandbox namespace, holding `bridge`. */
  sandbox: string;
  /** The bridge the port is attached to (br0). */
  bridge: string;
  /** The overlay MTU (br0's). */
  mtu: number;
  /** The network was created with `--opt encrypted`: its traffic must be encrypted (AES-GCM). */
  encrypted: boolean;
}

export type PortRef = Pick<PortSpec, 'network' | 'vni' | 'sandbox'>;

/** A remote endpoint: the overlay (IP, MAC) lives behind the tunnel endpoint `vtep`. */
export interface RemoteEndpoint {
  ip: string;
  mac: string;
  /** Underlay address of the host the endpoint is on. */
  vtep: string;
}

export interface FdbEntry {
  network: string;
  vni: number;
  mac: string;
  /** Remote tunnel endpoint; absent for a local (bridge-side) entry. */
  vtep?: string;
  ip?: string;
  /** 'static' (programmed), 'learned', 'local', ... as the implementation names it. */
  kind: string;
}

export interface PeerInfo {
  /** Underlay address of the peer host. */
  vtep: string;
  networks: string[];
  endpoints: number;
}

/** The peers behind per-network remote tables: one entry per tunnel endpoint (OverlayPorts.peers). */
export function peersOf(tables: Iterable<[network: string, remotes: readonly RemoteEndpoint[]]>): PeerInfo[] {
  const byVtep = new Map<string, PeerInfo>();
  for (const [network, remotes] of tables) {
    for (const r of remotes) {
      const p = byVtep.get(r.vtep) ?? { vtep: r.vtep, networks: [], endpoints: 0 };
      if (!p.networks.includes(network)) p.networks.push(network);
      p.endpoints++;
      byVtep.set(r.vtep, p);
    }
  }
  return [...byVtep.values()];
}

export interface PortStats {
  network: string;
  vni: number;
  /** Counters by name (rx_packets, tx_bytes, drops, ...), as the implementation counts them. */
  counters: Record<string, number>;
}

export interface OverlayPorts {
  /** The implementation's name, shown by `vxnet info`. */
  readonly kind: string;
  /**
   * The ports encrypt a network created with `--opt encrypted` (ESP). An endpoint of an encrypted
   * network is refused (ERR_ENCRYPTION_UNSUPPORTED) on ports that don't: never sent in cleartext.
   */
  readonly encrypts: boolean;
  /** Bytes ESP takes from an encrypted network's MTU on these ports (default: ESP in UDP, 37). */
  readonly espOverhead?: number;
  /** Creates (or adopts) the network's VXLAN port on `bridge` inside `sandbox`. Idempotent. */
  ensure(o: PortSpec): Promise<void>;
  /** Removes the port. Can run twice; the sandbox may already be gone. */
  remove(o: PortRef): Promise<void>;
  /** Replaces the network's whole table of remote endpoints (issue 6; single host: empty). */
  setRemotes(o: PortRef, remotes: RemoteEndpoint[]): Promise<void>;
  fdb(o: PortRef): Promise<FdbEntry[]>;
  peers(): Promise<PeerInfo[]>;
  stats(o: PortRef): Promise<PortStats>;
  /**
   * Removes whatever the implementation left behind for networks not in `keep` (after a crash:
   * half-made devices, TAPs of networks gone meanwhile). The daemon calls it once on start.
   */
  sweep(keep: PortRef[]): Promise<void>;
  /** Releases what the implementation holds (fds, workers); ports in the kernel stay. */
  close(): Promise<void>;
  /**
   * The cluster keys changed (src/daemon/keys.ts): install every key for receiving, send with
   * `primary`. Optional: implementations without encryption ignore it.
   */
  applyKeys?(keys: AppliedKeys): void | Promise<void>;
}
