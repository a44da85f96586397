// `vxnet daemon`: runs the daemon in the foreground until SIGTERM/SIGINT (JSON logs on stdout).
//
// Started as `ip netns exec HOST vxnet daemon`, the process lands in a private mount namespace
// (ip netns exec makes one to remount /sys), where the namespaces the daemon creates would be
// mounted in a /run/netns nobody else sees. So in that case it runs itself again in its parent's
// mount namespace (network namespace unchanged) and relays signals and the exit code; started
// with `nsenter --net=/run/netns/HOST`, nothing of the kind happens.

import { spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
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
    'cluster-advertise': {
      type: 'string',
      arg: 'IP|IFACE',
      help: "This host's tunnel endpoint (an address, or an interface holding one), published to other hosts",
    },
    'host-ttl': {
      type: 'string',
      arg: 'SECONDS',
      help: "Lease TTL of this host's membership: other hosts drop a dead host's peers after it (default 10)",
    },
    'cluster-store': {
      type: 'string',
      arg: 'etcd://H:P[,H:P]',
      help: 'Cluster store shared by the hosts (default: the embedded store, one host)',
    },
    'etcd-cacert': { type: 'string', arg: 'FILE', help: "CA of etcd's certificate (TLS to etcd)" },
    'etcd-cert': { type: 'string', arg: 'FILE', help: 'Client certificate for etcd' },
    'etcd-key': { type: 'string', arg: 'FILE', help: 'Key of --etcd-cert' },
    dns: {
      type: 'list',
      arg: 'IP[:PORT]',
      help: "Resolver for names that are not containers' (repeatable; default: /etc/resolv.conf)",
    },
    'vxlan-port': {
      type: 'string',
      arg: 'KIND',
      help: '"tap": vxnet\'s datapath (default); "kernel": the Linux vxlan device (reference)',
    },
    'key-rotate-interval': {
      type: 'string',
      arg: 'SECONDS',
      help: 'Rotate the cluster keys this often (default 43200 = 12 h; 0 = only `vxnet keys rotate`)',
    },
    'esp-encap': {
      type: 'string',
      arg: 'ip|udp',
      help: 'Encrypted networks\' ESP: IP protocol 50 ("ip", default) or in UDP 4500 ("udp", where protocol 50 is dropped); same on every host',
    },
    'crypto-workers': {
      type: 'string',
      arg: 'N',
      help: 'Helper threads sealing slices of big ESP batches, 0-64 (default 0; worth it only with idle cores)',
    },
    'log-level': { type: 'string', arg: 'LEVEL', help: 'trace|debug|info|warn|error (default info)' },
  },
  async run(p, ctx) {
    positionals(p, this, []);
    const outer = parentMountNs();
    // glibc read it at start (bin/vxnet.js sets it for the daemon's RSS); containers and helpers
    // started from here get the default, as without vxnet.
    if (outer === undefined) delete process.env.MALLOC_ARENA_MAX;
    if (outer !== undefined) return rerunIn(outer);
    const { DEFAULT_PORT_KIND, DEFAULT_STATE_DIR, PORT_KINDS, startDaemon } = await import(
      '../daemon/daemon.js'
    );
    const kind = (p.flags['vxlan-port'] as string | undefined) ?? DEFAULT_PORT_KIND;
    if (!PORT_KINDS[kind])
      throw new VxError(
        'ERR_BAD_OPTION',
        `--vxlan-port "${kind}" is not one of ${Object.keys(PORT_KINDS).join(', ')}`,
      );
    const level = (p.flags['log-level'] as string | undefined) ?? 'info';
    if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal'].includes(level))
      throw new VxError('ERR_BAD_OPTION', `--log-level "${level}" must be trace, debug, info, warn or error`);
    const stateDir = (p.flags['state-dir'] as string | undefined) ?? DEFAULT_STATE_DIR;
    const clusterStore = p.flags['cluster-store'] as string | undefined;
    const cacert = p.flags['etcd-cacert'] as string | undefined;
    const cert = p.flags['etcd-cert'] as string | undefined;
    const key = p.flags['etcd-key'] as string | undefined;
    if ((cert === undefined) !== (key === undefined))
      throw new VxError('ERR_BAD_OPTION', '--etcd-cert and --etcd-key go together');
    if (cert !== undefined && cacert === undefined)
      throw new VxError('ERR_BAD_OPTION', '--etcd-cert needs --etcd-cacert');
    const advertise = p.flags['cluster-advertise'] as string | undefined;
    if (clusterStore !== undefined && advertise === undefined)
      throw new VxError(
        'ERR_BAD_OPTION',
        "--cluster-store needs --cluster-advertise (this host's tunnel endpoint)",
      );
    const ttl = p.flags['host-ttl'] as string | undefined;
    if (ttl !== undefined && !/^[0-9]{1,4}$/.test(ttl))
      throw new VxError(
        'ERR_BAD_OPTION',
        `--host-ttl "${ttl}" must be a whole number of seconds from 1 to 3600`,
      );
    const encap = p.flags['esp-encap'] as string | undefined;
    if (encap !== undefined && encap !== 'ip' && encap !== 'udp')
      throw new VxError('ERR_BAD_OPTION', `--esp-encap "${encap}" must be "ip" or "udp"`);
    const cw = p.flags['crypto-workers'] as string | undefined;
    if (cw !== undefined && !(/^[0-9]{1,2}$/.test(cw) && Number(cw) <= 64))
      throw new VxError('ERR_BAD_OPTION', `--crypto-workers "${cw}" must be a whole number from 0 to 64`);
    const rot = p.flags['key-rotate-interval'] as string | undefined;
    if (rot !== undefined && !/^[0-9]{1,7}$/.test(rot))
      throw new VxError('ERR_BAD_OPTION', `--key-rotate-interval "${rot}" must be a whole number of seconds`);
    // The daemon runs ip/bridge for every endpoint, here and for other hosts': fork them from a
    // small helper, so each command does not block the daemon (kernel/spawner.ts).
    const { useSpawnHelper } = await import('../kernel/exec.js');
    const stopHelper = useSpawnHelper();
    const { openStore } = await import('../store/open.js');
    const store =
      clusterStore === undefined
        ? undefined
        : await openStore({
            clusterStore,
            stateDir,
            // etcd down at start is not fatal: the daemon serves and joins when etcd answers.
            probe: false,
            etcdTls: cacert === undefined ? undefined : { caFile: cacert, certFile: cert, keyFile: key },
          });
    if (store === undefined && cacert !== undefined)
      throw new VxError('ERR_BAD_CLUSTER_STORE', '--etcd-cacert/--etcd-cert/--etcd-key need --cluster-store');
    const starting = startDaemon({
      stateDir,
      store,
      storeKind: store === undefined ? undefined : 'etcd',
      socket: (p.flags.socket as string | undefined) ?? ctx.host,
      hostId: p.flags['host-id'] as string | undefined,
      advertise,
      hostTtl: ttl === undefined ? undefined : Number(ttl),
      // Made by the daemon once --cluster-advertise is resolved (an interface gives its address).
      portKind: kind,
      logLevel: level,
      dnsUpstreams: p.flags.dns as string[] | undefined,
      keyRotateMs: rot === undefined ? undefined : Number(rot) * 1000,
      ...(encap !== undefined ? { espEncap: encap as 'ip' | 'udp' } : {}),
      ...(cw !== undefined ? { cryptoWorkers: Number(cw) } : {}),
    });
    // A failed start must not leave the etcd client holding the process open.
    const d = await starting.catch(async (e: unknown) => {
      await store?.close().catch(() => undefined);
      throw e;
    });
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
        d.close().then(resolve, resolve).finally(stopHelper);
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
    return 0;
  },
};

/** The parent's mount namespace when it differs from ours (we were started by `ip netns exec`). */
function parentMountNs(): string | undefined {
  if (process.env.VXNET_MOUNT_NS_REENTERED) return undefined;
  try {
    const outer = `/proc/${process.ppid}/ns/mnt`;
    return readlinkSync('/proc/self/ns/mnt') === readlinkSync(outer) ? undefined : outer;
  } catch {
    return undefined;
  }
}

function rerunIn(mountNs: string): Promise<number> {
  const argv = [
    `--mount=${mountNs}`,
    `--wd=${process.cwd()}`,
    '--',
    process.execPath,
    ...process.execArgv,
    ...process.argv.slice(1),
  ];
  const child = spawn('nsenter', argv, {
    stdio: 'inherit',
    env: { ...process.env, VXNET_MOUNT_NS_REENTERED: '1' },
  });
  const relay = (signal: NodeJS.Signals) => child.kill(signal);
  process.on('SIGTERM', relay);
  process.on('SIGINT', relay);
  return new Promise((resolve, reject) => {
    child.once('error', (e) => reject(new VxError('ERR_SPAWN', `could not re-run the daemon: ${e.message}`)));
    child.once('exit', (code, signal) => resolve(code ?? (signal === 'SIGTERM' ? 0 : 1)));
  });
}
