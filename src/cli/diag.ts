// `vxnet fdb show|peers|stats|info`: what the datapath and the daemon report, as tables or JSON.
//
// Owns: presentation only. The rows come from the daemon's OverlayPorts implementation
// unchanged (GET /fdb, /peers, /stats), so the CLI shows the datapath's own view of its tables.

import { type Command, FORMAT_FLAG, formatFlag, type Group, positionals, table } from './args.js';

interface Fdb {
  network: string;
  vni: number;
  mac: string;
  vtep?: string;
  ip?: string;
  kind: string;
}

const fdbShow: Command = {
  name: 'fdb show',
  usage: '[--net NETWORK] [--format json]',
  summary: "Show the VXLAN ports' forwarding tables (MAC -> tunnel endpoint)",
  flags: { net: { type: 'string', arg: 'NETWORK', help: 'Only this network' }, format: FORMAT_FLAG },
  async run(p, ctx) {
    positionals(p, this, []);
    const q = p.flags.net === undefined ? '' : `?network=${encodeURIComponent(p.flags.net as string)}`;
    const rows = await ctx.client().call<Fdb[]>('GET', `/fdb${q}`);
    if (formatFlag(p) === 'json') console.log(JSON.stringify(rows, null, 2));
    else
      console.log(
        table(
          ['VNI', 'MAC', 'IP', 'VTEP', 'KIND'],
          rows.map((r) => [String(r.vni), r.mac, r.ip ?? '', r.vtep ?? '', r.kind]),
        ),
      );
    return 0;
  },
};

export const fdb: Group = { name: 'fdb', summary: 'Forwarding database', commands: { show: fdbShow } };

export const peers: Command = {
  name: 'peers',
  usage: '[--format json]',
  summary: 'List the remote tunnel endpoints this host forwards to',
  flags: { format: FORMAT_FLAG },
  async run(p, ctx) {
    positionals(p, this, []);
    const rows = await ctx
      .client()
      .call<{ vtep: string; networks: string[]; endpoints: number }[]>('GET', '/peers');
    if (formatFlag(p) === 'json') console.log(JSON.stringify(rows, null, 2));
    else
      console.log(
        table(
          ['VTEP', 'NETWORKS', 'ENDPOINTS'],
          rows.map((r) => [r.vtep, r.networks.map((n) => n.slice(0, 12)).join(','), String(r.endpoints)]),
        ),
      );
    return 0;
  },
};

export const stats: Command = {
  name: 'stats',
  usage: '[--format json]',
  summary: "Show the datapath counters of this host's VXLAN ports",
  flags: { format: FORMAT_FLAG },
  async run(p, ctx) {
    positionals(p, this, []);
    const rows = await ctx
      .client()
      .call<{ name: string; vni: number; counters: Record<string, number> }[]>('GET', '/stats');
    if (formatFlag(p) === 'json') console.log(JSON.stringify(rows, null, 2));
    else {
      const out = rows.flatMap((r) =>
        Object.entries(r.counters).map(([k, v]) => [r.name, String(r.vni), k, String(v)]),
      );
      console.log(table(['NETWORK', 'VNI', 'COUNTER', 'VALUE'], out));
    }
    return 0;
  },
};

export const info: Command = {
  name: 'info',
  usage: '[--format json]',
  summary: 'Show what the daemon runs with (host id, store, VXLAN ports, MTU)',
  flags: { format: FORMAT_FLAG },
  async run(p, ctx) {
    positionals(p, this, []);
    const i = await ctx.client().call<Record<string, unknown>>('GET', '/info');
    if (formatFlag(p) === 'json') console.log(JSON.stringify(i, null, 2));
    else for (const [k, v] of Object.entries(i)) console.log(`${k}: ${String(v)}`);
    return 0;
  },
};
