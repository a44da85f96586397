// The per-host gateway bridge's firewall: NAT for container egress, and no container-to-container
// traffic through it (Docker's docker_gwbridge with icc=false).
//
// Owns: one nftables table (`ip vxnet_gw` by default) in the host's namespace:
//   postrouting: packets from the gateway subnet leaving by another interface are masqueraded;
//   forward:     packets routed from the gateway bridge back into it are dropped.
// The table is replaced atomically as a whole (`table; delete table; table {...}` in one nft
// transaction), so ensuring it is idempotent and never leaves a half-written ruleset. Frames
// bridged between two ports reach the ip forward hook only through br_netfilter
// (bridge-nf-call-iptables=1, as on Docker hosts and here); it may be absent, and this kernel has
// no nft_meta_bridge (`meta ibrname` fails), so the L2 guarantee is the ports' `isolated` flag:
// attach each container's port with `attachPort(..., { isolated: true })` (bridge.ts).
// Tests run this inside namespaces they create; it never touches a firewall it was not pointed at.

import { formatCidr, parseCidr } from '../ipam/cidr.js';
import { checkIfName, isMissing, run, sysctl, type Where } from './exec.js';

export const GATEWAY_BRIDGE = 'vxnet_gwbridge';
export const GATEWAY_SUBNET = '172.18.0.0/16';

export interface GatewayNatOptions extends Where {
  bridge?: string;
  subnet?: string;
  /** nftables table name (default 'vxnet_gw'). */
  table?: string;
  /** Turn on net.ipv4.ip_forward in the namespace (default true): egress needs it. */
  forwarding?: boolean;
}

function tableName(t: string | undefined): string {
  const name = t ?? 'vxnet_gw';
  checkIfName(name);
  return name;
}

export function gatewayRuleset(o: GatewayNatOptions = {}): string {
  const table = tableName(o.table);
  const bridge = checkIfName(o.bridge ?? GATEWAY_BRIDGE);
  const subnet = formatCidr(parseCidr(o.subnet ?? GATEWAY_SUBNET, 'gateway subnet'));
  return `table ip ${table}
delete table ip ${table}
table ip ${table} {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr ${subnet} oifname != "${bridge}" masquerade
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "${bridge}" oifname "${bridge}" drop
  }
}
`;
}

export async function ensureGatewayNat(o: GatewayNatOptions = {}): Promise<void> {
  const rules = gatewayRuleset(o);
  if (o.forwarding ?? true) await sysctl('net.ipv4.ip_forward', 1, o);
  await run('nft', ['-f', '-'], {
    netns: o.netns,
    input: rules,
    action: `install nftables table "${tableName(o.table)}"`,
  });
}

/** Removes the table. Can run twice. */
export async function removeGatewayNat(o: Where & { table?: string } = {}): Promise<void> {
  const table = tableName(o.table);
  await run('nft', ['delete', 'table', 'ip', table], {
    netns: o.netns,
    action: `delete nftables table "${table}"`,
  }).catch((e) => {
    if (!isMissing(e)) throw e;
  });
}

export async function gatewayNatInstalled(o: Where & { table?: string } = {}): Promise<boolean> {
  const table = tableName(o.table);
  const out = await run('nft', ['-j', 'list', 'tables', 'ip'], {
    netns: o.netns,
    action: 'list nftables tables',
  });
  const parsed = JSON.parse(out) as { nftables: { table?: { name: string } }[] };
  return parsed.nftables.some((x) => x.table?.name === table);
}
