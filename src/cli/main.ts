// The `vxnet` command line. Each subcommand lives in its own module under src/cli/; this file is
// only the global options (-H) and a dispatch table. Add a command by adding a row to COMMANDS.
import { VxError } from '../errors.js';
import { packageVersion } from '../paths.js';
import { type CliContext, type Command, type Group, helpText, parseArgs, wantsHelp } from './args.js';
import { Client, resolveHost } from './client.js';

type Entry = { summary: string; load: () => Promise<Command | Group> };

const COMMANDS: Record<string, Entry> = {
  daemon: { summary: 'Run the daemon of this host', load: async () => (await import('./daemon.js')).daemon },
  network: { summary: 'Manage overlay networks', load: async () => (await import('./network.js')).network },
  run: {
    summary: 'Run a command in a new container on a network',
    load: async () => (await import('./container.js')).run,
  },
  ps: { summary: 'List containers', load: async () => (await import('./container.js')).ps },
  exec: { summary: 'Run a command in a container', load: async () => (await import('./container.js')).exec },
  rm: { summary: 'Remove containers', load: async () => (await import('./container.js')).rm },
  logs: { summary: "Print a container's output", load: async () => (await import('./container.js')).logs },
  inspect: {
    summary: 'Show a container as JSON',
    load: async () => (await import('./container.js')).inspect,
  },
  attach: {
    summary: 'Attach a namespace made elsewhere to a network',
    load: async () => (await import('./container.js')).attach,
  },
  detach: {
    summary: 'Detach a container or namespace from a network',
    load: async () => (await import('./container.js')).detach,
  },
  fdb: { summary: 'Show forwarding tables', load: async () => (await import('./diag.js')).fdb },
  peers: { summary: 'List remote tunnel endpoints', load: async () => (await import('./diag.js')).peers },
  stats: { summary: 'Show datapath counters', load: async () => (await import('./diag.js')).stats },
  info: { summary: 'Show daemon information', load: async () => (await import('./diag.js')).info },
  keys: { summary: 'Cluster keys of encrypted overlays', load: async () => (await import('./keys.js')).keys },
  tunnel: {
    summary: 'Run one VXLAN tunnel endpoint (TAP) in the foreground',
    load: async () => (await import('./tunnel.js')).tunnel,
  },
  lab: { summary: 'Simulated hosts on this machine', load: async () => (await import('./lab.js')).lab },
  demo: {
    summary: 'Replay the overlay walkthrough on a fresh lab (wget http://web across hosts)',
    load: async () => (await import('./demo.js')).demo,
  },
};

function usage(): string {
  const rows = Object.entries(COMMANDS).map(([n, e]) => `  ${n.padEnd(14)} ${e.summary}`);
  return `Usage: vxnet [-H unix:///path/to/vxnet.sock | --host LABHOST] COMMAND [OPTIONS]

Commands:
${rows.join('\n')}
  version        Print the version

Global options:
  -H, --host unix:///PATH   Daemon socket (default $VXNET_HOST, else unix:///run/vxnet/vxnet.sock)
  -H, --host NAME           The daemon of a lab host (host1, host2, ...: see 'vxnet lab')

Run 'vxnet COMMAND --help' for more information on a command.`;
}

/** `--host host2`: a lab host's name stands for its daemon's socket. */
async function labHost(host: string | undefined): Promise<string | undefined> {
  if (host === undefined || !/^[a-z][a-z0-9-]*$/.test(host)) return host;
  const { readLabState, labDir } = await import('../lab/lab.js');
  const s = readLabState();
  const h = s?.hosts.find((x) => x.name === host);
  if (!h)
    throw new VxError(
      'ERR_LAB_NOT_FOUND',
      s
        ? `the lab has no host "${host}" (it has ${s.hosts.map((x) => x.name).join(', ')})`
        : `--host ${host}: no lab is up in ${labDir()} (start one with 'vxnet lab up'), and it is not unix:///path`,
    );
  return `unix://${h.socket}`;
}

function groupUsage(g: Group): string {
  const rows = Object.entries(g.commands)
    .filter(([n, c]) => c.name.endsWith(` ${n}`))
    .map(([n, c]) => `  ${n.padEnd(12)} ${c.summary}`);
  return `Usage: vxnet ${g.name} COMMAND\n\n${g.summary}\n\nCommands:\n${rows.join('\n')}`;
}

async function main(argv: string[]): Promise<number> {
  let host: string | undefined;
  while (argv[0] === '-H' || argv[0] === '--host' || argv[0]?.startsWith('--host=')) {
    const a = argv.shift()!;
    host = a.startsWith('--host=') ? a.slice('--host='.length) : argv.shift();
    if (host === undefined) throw new VxError('ERR_BAD_OPTION', `${a} needs a value (unix:///path)`);
  }
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage());
    return 0;
  }
  if (cmd === 'version' || cmd === '--version') {
    console.log(packageVersion());
    return 0;
  }
  const entry = COMMANDS[cmd];
  if (!entry) throw new VxError('ERR_UNKNOWN_COMMAND', `unknown command "${cmd}"\n\n${usage()}`);
  host = await labHost(host);
  const explicit = host ?? process.env.VXNET_HOST;
  const ctx: CliContext = {
    host: explicit === undefined ? undefined : resolveHost(explicit),
    client: () => new Client(resolveHost(host)),
  };
  const loaded = await entry.load();
  let command: Command;
  let args = rest;
  if ('commands' in loaded) {
    const [sub, ...subArgs] = rest;
    if (sub === undefined || sub === '--help' || sub === '-h') {
      console.log(groupUsage(loaded));
      return sub === undefined ? 1 : 0;
    }
    const found = loaded.commands[sub];
    if (!found)
      throw new VxError('ERR_UNKNOWN_COMMAND', `unknown command "${cmd} ${sub}"\n\n${groupUsage(loaded)}`);
    command = found;
    args = subArgs;
  } else command = loaded;
  if (wantsHelp(args)) {
    console.log(helpText(command));
    return 0;
  }
  return command.run(parseArgs(args, command), ctx);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof VxError) console.error(`vxnet: ${err.code}: ${err.message}`);
    else console.error('vxnet:', err);
    process.exitCode = 1;
  },
);
