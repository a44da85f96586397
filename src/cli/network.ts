// `vxnet network create|ls|inspect|rm|connect|disconnect`, shaped like `docker network`.
//
// Owns: turning flags into the Docker-shaped API body (POST /networks/create) and printing the
// answers. The daemon validates everything again; the CLI checks only what it alone knows
// (its own flags), so the API and the CLI fail with the same codes.

import { VxError } from '../errors.js';
import { type Command, FORMAT_FLAG, formatFlag, type Group, keyValues, positionals, table } from './args.js';

interface NetworkJson {
  Name: string;
  Id: string;
  Driver: string;
  Scope: string;
  Internal: boolean;
  IPAM: { Config: { Subnet: string; Gateway: string }[] };
  Options: Record<string, string>;
  Containers: Record<string, unknown>;
  VNI: number;
}

const create: Command = {
  name: 'network create',
  usage: '[OPTIONS] NETWORK',
  summary: 'Create an overlay network',
  flags: {
    driver: { type: 'string', short: 'd', arg: 'DRIVER', help: 'Driver (only "overlay")' },
    subnet: { type: 'string', arg: 'CIDR', help: 'Subnet (default: a free /24 of 10.0.0.0/8)' },
    gateway: { type: 'string', arg: 'IP', help: 'Gateway address of the subnet' },
    'ip-range': { type: 'string', arg: 'CIDR', help: 'Allocate dynamic addresses from this sub-range' },
    opt: {
      type: 'list',
      short: 'o',
      arg: 'KEY[=VALUE]',
      help: 'encrypted, com.docker.network.driver.mtu=N, vxlanid=N',
    },
    internal: { type: 'bool', help: 'No egress: containers get no gateway-bridge interface' },
    attachable: { type: 'bool', help: 'Allow namespaces made elsewhere to attach' },
    label: { type: 'list', arg: 'KEY=VALUE', help: 'Set metadata on the network' },
  },
  async run(p, ctx) {
    const [name] = positionals(p, this, ['NETWORK']);
    const driver = (p.flags.driver as string | undefined) ?? 'overlay';
    if (driver !== 'overlay')
      throw new VxError('ERR_BAD_DRIVER', `--driver "${driver}" is not supported: vxnet provides "overlay"`);
    const config: Record<string, string> = {};
    if (p.flags.subnet !== undefined) config.Subnet = p.flags.subnet as string;
    if (p.flags.gateway !== undefined) config.Gateway = p.flags.gateway as string;
    if (p.flags['ip-range'] !== undefined) config.IPRange = p.flags['ip-range'] as string;
    const body = {
      Name: name,
      Driver: driver,
      Internal: p.flags.internal === true,
      Attachable: p.flags.attachable === true,
      Options: keyValues(p.flags.opt as string[] | undefined, 'opt'),
      Labels: keyValues(p.flags.label as string[] | undefined, 'label'),
      IPAM: { Driver: 'default', Config: Object.keys(config).length > 0 ? [config] : [] },
    };
    const r = await ctx.client().call<{ Id: string }>('POST', '/networks/create', body);
    console.log(r.Id);
    return 0;
  },
};

const ls: Command = {
  name: 'network ls',
  usage: '[OPTIONS]',
  summary: 'List networks',
  flags: { format: FORMAT_FLAG, quiet: { type: 'bool', short: 'q', help: 'Print only ids' } },
  async run(p, ctx) {
    positionals(p, this, []);
    const nets = await ctx.client().call<NetworkJson[]>('GET', '/networks');
    if (formatFlag(p) === 'json') console.log(JSON.stringify(nets, null, 2));
    else if (p.flags.quiet) for (const n of nets) console.log(n.Id.slice(0, 12));
    else {
      const rows = nets.map((n) => [
        n.Id.slice(0, 12),
        n.Name,
        n.Driver,
        n.IPAM.Config[0]?.Subnet ?? '',
        String(n.VNI),
        n.Internal ? 'internal' : '',
        String(Object.keys(n.Containers).length),
      ]);
      console.log(table(['NETWORK ID', 'NAME', 'DRIVER', 'SUBNET', 'VNI', 'FLAGS', 'CONTAINERS'], rows));
    }
    return 0;
  },
};

const inspect: Command = {
  name: 'network inspect',
  usage: 'NETWORK [NETWORK...]',
  summary: 'Display detailed information on networks (JSON, as docker network inspect)',
  flags: { format: FORMAT_FLAG },
  async run(p, ctx) {
    const names = positionals(p, this, ['NETWORK...'], { min: 1 });
    formatFlag(p);
    const out = [];
    for (const n of names) out.push(await ctx.client().call('GET', `/networks/${encodeURIComponent(n)}`));
    console.log(JSON.stringify(out, null, 2));
    return 0;
  },
};

const rm: Command = {
  name: 'network rm',
  usage: 'NETWORK [NETWORK...]',
  summary: 'Remove networks (refused while endpoints are attached)',
  flags: {
    force: {
      type: 'bool',
      short: 'f',
      help: "First remove the endpoints of dead hosts (membership lease expired); never a live host's",
    },
  },
  async run(p, ctx) {
    const names = positionals(p, this, ['NETWORK...'], { min: 1 });
    const q = p.flags.force ? '?force=1' : '';
    for (const n of names) {
      await ctx.client().call('DELETE', `/networks/${encodeURIComponent(n)}${q}`);
      console.log(n);
    }
    return 0;
  },
};

export const endpointFlags = {
  ip: { type: 'string', arg: 'IP', help: 'IPv4 address on the network (default: the next free one)' },
  alias: { type: 'list', arg: 'NAME', help: 'Extra name of the container on the network' },
} as const;

const connect: Command = {
  name: 'network connect',
  usage: '[OPTIONS] NETWORK CONTAINER',
  summary: 'Connect a container (or a namespace made elsewhere) to a network',
  flags: { ...endpointFlags },
  async run(p, ctx) {
    const [net, container] = positionals(p, this, ['NETWORK', 'CONTAINER']);
    await connectCall(ctx.client(), { net: net!, container: container!, p });
    return 0;
  },
};

export async function connectCall(
  client: import('./client.js').Client,
  o: { net: string; container: string; netns?: string; p: import('./args.js').Parsed },
) {
  const ipam = o.p.flags.ip === undefined ? {} : { IPv4Address: o.p.flags.ip };
  const body: Record<string, unknown> = {
    Container: o.container,
    EndpointConfig: { IPAMConfig: ipam, Aliases: o.p.flags.alias ?? [] },
  };
  if (o.netns !== undefined) body.Netns = o.netns;
  return client.call<{ IPAddress: string; Interface: string }>(
    'POST',
    `/networks/${encodeURIComponent(o.net)}/connect`,
    body,
  );
}

const disconnect: Command = {
  name: 'network disconnect',
  usage: '[OPTIONS] NETWORK CONTAINER',
  summary: 'Disconnect a container from a network',
  flags: {
    force: {
      type: 'bool',
      short: 'f',
      help: 'Also a container of a dead host (membership lease expired): its endpoint record is removed',
    },
  },
  async run(p, ctx) {
    const [net, container] = positionals(p, this, ['NETWORK', 'CONTAINER']);
    const body: Record<string, unknown> = { Container: container };
    if (p.flags.force) body.Force = true;
    await ctx.client().call('POST', `/networks/${encodeURIComponent(net!)}/disconnect`, body);
    return 0;
  },
};

export const network: Group = {
  name: 'network',
  summary: 'Manage overlay networks',
  commands: { create, ls, list: ls, inspect, rm, remove: rm, connect, disconnect },
};
