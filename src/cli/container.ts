// `vxnet run|ps|exec|rm|logs|inspect|attach|detach`: containers, which in vxnet are network
// namespaces with a process running inside.
//
// Owns: the client side of the container lifecycle. `run` is create + start (as docker's
// client does it); without -d it waits for the command and prints its output, exiting with its
// code. `exec` enters the container's namespace from the CLI process itself (ip netns exec), so
// the command gets the caller's terminal; it needs root like the daemon.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { VxError } from '../errors.js';
import { type Command, FORMAT_FLAG, formatFlag, positionals, table } from './args.js';
import { connectCall, endpointFlags } from './network.js';

interface ContainerJson {
  Id: string;
  Name: string;
  Netns: string;
  NetnsPath: string;
  External: boolean;
  Cmd: string[];
  State: { Status: string; Pid: number; ExitCode: number | null };
  NetworkSettings: { Networks: Record<string, { IPAddress: string }> };
}

function needCmd(rest: string[] | undefined, name: string): string[] {
  if (!rest || rest.length === 0)
    throw new VxError('ERR_BAD_COMMAND', `'vxnet ${name}' needs a command after --, e.g. -- sleep infinity`);
  return rest;
}

export const run: Command = {
  name: 'run',
  usage: '--net NETWORK [OPTIONS] -- CMD [ARG...]',
  summary: 'Create a container (a network namespace) on a network and run CMD inside it',
  flags: {
    net: { type: 'string', arg: 'NETWORK', help: 'Network to connect the container to (required)' },
    network: { type: 'string', arg: 'NETWORK', help: 'Same as --net' },
    name: { type: 'string', arg: 'NAME', help: 'Container name (default: generated)' },
    ...endpointFlags,
    detach: { type: 'bool', short: 'd', help: 'Run in the background and print the container id' },
  },
  async run(p, ctx) {
    positionals(p, this, []);
    const cmd = needCmd(p.rest, 'run');
    const net = (p.flags.net ?? p.flags.network) as string | undefined;
    if (net === undefined) throw new VxError('ERR_BAD_OPTION', '--net NETWORK is required');
    const name = (p.flags.name as string | undefined) ?? `ct-${randomBytes(3).toString('hex')}`;
    const ipam = p.flags.ip === undefined ? {} : { IPv4Address: p.flags.ip };
    const body = {
      Cmd: cmd,
      HostConfig: { NetworkMode: net },
      NetworkingConfig: { EndpointsConfig: { [net]: { IPAMConfig: ipam, Aliases: p.flags.alias ?? [] } } },
    };
    const c = ctx.client();
    const made = await c.call<{ Id: string }>(
      'POST',
      `/containers/create?name=${encodeURIComponent(name)}`,
      body,
    );
    await c.call('POST', `/containers/${encodeURIComponent(name)}/start`);
    if (p.flags.detach) {
      console.log(made.Id);
      return 0;
    }
    const { StatusCode } = await c.call<{ StatusCode: number | null }>(
      'POST',
      `/containers/${encodeURIComponent(name)}/wait`,
    );
    process.stdout.write(await c.call<string>('GET', `/containers/${encodeURIComponent(name)}/logs`));
    return StatusCode ?? 0;
  },
};

export const ps: Command = {
  name: 'ps',
  usage: '[OPTIONS]',
  summary: 'List the containers of this host',
  flags: {
    format: FORMAT_FLAG,
    all: { type: 'bool', short: 'a', help: 'Also stopped containers (the default: all are listed)' },
  },
  async run(p, ctx) {
    positionals(p, this, []);
    const cts = await ctx.client().call<ContainerJson[]>('GET', '/containers/json');
    if (formatFlag(p) === 'json') {
      console.log(JSON.stringify(cts, null, 2));
      return 0;
    }
    const rows = cts.map((c) => [
      c.Id.slice(0, 12),
      c.Name,
      c.State.Status +
        (c.State.Status === 'exited' && c.State.ExitCode !== null ? ` (${c.State.ExitCode})` : ''),
      Object.entries(c.NetworkSettings.Networks)
        .map(([n, e]) => `${n}:${e.IPAddress}`)
        .join(','),
      c.External ? `(netns ${c.Netns})` : c.Cmd.join(' '),
    ]);
    console.log(table(['CONTAINER ID', 'NAME', 'STATE', 'NETWORKS', 'COMMAND'], rows));
    return 0;
  },
};

export const exec: Command = {
  name: 'exec',
  usage: 'CONTAINER -- CMD [ARG...]',
  summary: "Run a command inside a container's network namespace",
  flags: {},
  async run(p, ctx) {
    const [name] = positionals(p, this, ['CONTAINER']);
    const cmd = needCmd(p.rest, 'exec');
    const ct = await ctx.client().call<ContainerJson>('GET', `/containers/${encodeURIComponent(name!)}/json`);
    // ip netns exec: also mounts the container's resolv.conf (the embedded DNS resolver).
    const child = spawn('ip', ['netns', 'exec', ct.Netns, ...cmd], { stdio: 'inherit' });
    return new Promise((resolve, reject) => {
      child.once('error', (e) => reject(new VxError('ERR_SPAWN', `could not run ${cmd[0]}: ${e.message}`)));
      child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + 9 : 1)));
    });
  },
};

export const rm: Command = {
  name: 'rm',
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  summary: 'Remove containers: their process, namespace, interfaces and addresses',
  flags: { force: { type: 'bool', short: 'f', help: 'Kill a running container first' } },
  async run(p, ctx) {
    const names = positionals(p, this, ['CONTAINER...'], { min: 1 });
    for (const n of names) {
      await ctx
        .client()
        .call('DELETE', `/containers/${encodeURIComponent(n)}${p.flags.force ? '?force=1' : ''}`);
      console.log(n);
    }
    return 0;
  },
};

export const logs: Command = {
  name: 'logs',
  usage: 'CONTAINER',
  summary: "Print a container's output",
  flags: {},
  async run(p, ctx) {
    const [name] = positionals(p, this, ['CONTAINER']);
    process.stdout.write(
      await ctx.client().call<string>('GET', `/containers/${encodeURIComponent(name!)}/logs`),
    );
    return 0;
  },
};

export const inspect: Command = {
  name: 'inspect',
  usage: 'CONTAINER [CONTAINER...]',
  summary: 'Display detailed information on containers (JSON)',
  flags: {},
  async run(p, ctx) {
    const names = positionals(p, this, ['CONTAINER...'], { min: 1 });
    const out = [];
    for (const n of names)
      out.push(await ctx.client().call('GET', `/containers/${encodeURIComponent(n)}/json`));
    console.log(JSON.stringify(out, null, 2));
    return 0;
  },
};

export const attach: Command = {
  name: 'attach',
  usage: '--net NETWORK [OPTIONS] NAMESPACE|CONTAINER',
  summary: 'Attach a network namespace made elsewhere (or a container) to a network',
  flags: {
    net: { type: 'string', arg: 'NETWORK', help: 'Network to attach to (required)' },
    name: { type: 'string', arg: 'NAME', help: 'Container name for the namespace (default: its name)' },
    ...endpointFlags,
  },
  async run(p, ctx) {
    const [target] = positionals(p, this, ['NAMESPACE']);
    const net = p.flags.net as string | undefined;
    if (net === undefined) throw new VxError('ERR_BAD_OPTION', '--net NETWORK is required');
    const name = p.flags.name as string | undefined;
    const o = name === undefined ? { container: target! } : { container: name, netns: target! };
    const ep = await connectCall(ctx.client(), { net, p, ...o });
    console.log(`${ep.Interface} ${ep.IPAddress}`);
    return 0;
  },
};

export const detach: Command = {
  name: 'detach',
  usage: '--net NETWORK CONTAINER',
  summary:
    'Detach a container or attached namespace from a network (an attached namespace is left as it was)',
  flags: { net: { type: 'string', arg: 'NETWORK', help: 'Network to detach from (required)' } },
  async run(p, ctx) {
    const [name] = positionals(p, this, ['CONTAINER']);
    const net = p.flags.net as string | undefined;
    if (net === undefined) throw new VxError('ERR_BAD_OPTION', '--net NETWORK is required');
    await ctx.client().call('POST', `/networks/${encodeURIComponent(net)}/disconnect`, { Container: name });
    return 0;
  },
};
