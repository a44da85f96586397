// `vxnet daemon`: runs the daemon in the foreground until SIGTERM/SIGINT (JSON logs on stdout).

import { VxError } from '../errors.js';
import { type Command, positionals } from './args.js';

export const daemon: Command = {
  name: 'daemon',
  usage: '[OPTIONS]',
  summary: 'Run the vxnet daemon of this host (API on a Unix socket)',
  flags: {
    'state-dir': { type: 'string', arg: 'DIR', help: 'State directory (default /var/lib/vxnet)' },
    socket: { type: 'string', arg: 'PATH', help: 'API socket (default /run/vxnet/vxnet.sock, or -H)' },
    'host-id': {
      type: 'string',
      arg: 'ID',
      help: 'Host id, 1-16 of [a-z0-9] (default: made once, kept in the state dir)',
    },
    'vxlan-port': { type: 'string', arg: 'KIND', help: 'VXLAN port implementation (default "kernel")' },
    'log-level': { type: 'string', arg: 'LEVEL', help: 'trace|debug|info|warn|error (default info)' },
  },
  async run(p, ctx) {
    positionals(p, this, []);
    const { PORT_KINDS, startDaemon } = await import('../daemon/daemon.js');
    const kind = (p.flags['vxlan-port'] as string | undefined) ?? 'kernel';
    const make = PORT_KINDS[kind];
    if (!make)
      throw new VxError(
        'ERR_BAD_OPTION',
        `--vxlan-port "${kind}" is not one of ${Object.keys(PORT_KINDS).join(', ')}`,
      );
    const level = (p.flags['log-level'] as string | undefined) ?? 'info';
    if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal'].includes(level))
      throw new VxError('ERR_BAD_OPTION', `--log-level "${level}" must be trace, debug, info, warn or error`);
    const d = await startDaemon({
      stateDir: p.flags['state-dir'] as string | undefined,
      socket: (p.flags.socket as string | undefined) ?? ctx.host,
      hostId: p.flags['host-id'] as string | undefined,
      ports: make(),
      logLevel: level,
    });
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
        d.close().then(resolve, resolve);
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
    return 0;
  },
};
