// A real etcd for tests and the lab: start Debian's /usr/bin/etcd, wait until it serves, stop it.
//
// Owns: one etcd process and its data dir. A single-member cluster on 127.0.0.1 with free ports
// chosen here, or inside a named network namespace on the URLs the caller gives (the lab puts it
// on its underlay). Automatic compaction is off so tests compact on purpose. Heartbeat/election
// are short (50/500 ms) so a start or restart serves within about a second; on one member there
// is no peer whose timing could suffer. `stop()` kills the process and removes the data dir
// (unless asked to keep it, to restart on the same dir); a start that fails does both itself.
// Every etcd still running when this process exits is killed, so a crashed test leaves none.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VxError } from '../errors.js';
import { checkNetnsName } from '../kernel/exec.js';

export const ETCD_BIN = '/usr/bin/etcd';
export const ETCDCTL_BIN = '/usr/bin/etcdctl';

export interface StartEtcdOptions {
  /** Data dir; default a fresh temp dir. Pass the old one to restart a stopped etcd on its data. */
  dataDir?: string;
  /** `http://IP:PORT` clients use; default http://127.0.0.1:<free port> (required with netns). */
  clientUrl?: string;
  /** `http://IP:PORT` for raft peers; default http://127.0.0.1:<free port> (required with netns). */
  peerUrl?: string;
  /** Run inside this network namespace (`ip netns exec`). */
  netns?: string;
  /** Member name (default "vxnet"). */
  name?: string;
  /** How long to wait for it to serve (default 15000 ms). */
  startTimeoutMs?: number;
  /**
   * Serve clients over TLS (clientUrl https://...), requiring client certificates signed by
   * caFile. The health check presents the server's own certificate, so it must also allow
   * clientAuth (as etcd's docs advise for member certificates).
   */
  tls?: { certFile: string; keyFile: string; caFile: string };
  /**
   * Outlive this process (the lab's etcd, started by `vxnet lab up` which then exits): its own
   * process group, output appended to this file instead of kept in memory, not killed at exit.
   */
  detached?: { logFile: string };
}

export interface EtcdServer {
  readonly clientUrl: string;
  readonly peerUrl: string;
  /** `H:P` of the client URL, and the `--cluster-store` value for it. */
  readonly endpoint: string;
  readonly clusterStore: string;
  readonly dataDir: string;
  readonly netns: string | undefined;
  readonly pid: number;
  /** etcd's output so far (for failure messages). */
  log(): string;
  /** Kills etcd (SIGKILL) and removes the data dir unless `keepData`. Can run twice. */
  stop(options?: { keepData?: boolean }): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHook = false;

export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdServer> {
  if (options.netns !== undefined) {
    checkNetnsName(options.netns);
    if (!options.clientUrl || !options.peerUrl)
      throw new VxError('ERR_INVALID_ARG', 'options.clientUrl and options.peerUrl are required with netns');
  }
  const tls = options.tls;
  const scheme = tls ? 'https' : 'http';
  const clientUrl = checkUrl(
    options.clientUrl ?? `${scheme}://127.0.0.1:${await freePort()}`,
    'clientUrl',
    scheme,
  );
  const peerUrl = checkUrl(options.peerUrl ?? `http://127.0.0.1:${await freePort()}`, 'peerUrl', 'http');
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'vxnet-etcd-'));
  const name = options.name ?? 'vxnet';
  const args = [
    '--name',
    name,
    '--data-dir',
    dataDir,
    '--listen-client-urls',
    clientUrl,
    '--advertise-client-urls',
    clientUrl,
    '--listen-peer-urls',
    peerUrl,
    '--initial-advertise-peer-urls',
    peerUrl,
    '--initial-cluster',
    `${name}=${peerUrl}`,
    '--initial-cluster-state',
    'new',
    '--auto-compaction-retention',
    '0',
    '--heartbeat-interval',
    '50',
    '--election-timeout',
    '500',
    '--logger',
    'zap',
    '--log-outputs',
    'stderr',
    ...(tls
      ? [
          '--cert-file',
          tls.certFile,
          '--key-file',
          tls.keyFile,
          '--trusted-ca-file',
          tls.caFile,
          '--client-cert-auth',
        ]
      : []),
  ];
  const [cmd, argv] = options.netns
    ? ['ip', ['netns', 'exec', options.netns, ETCD_BIN, ...args]]
    : [ETCD_BIN, args];
  const logFd = options.detached ? openSync(options.detached.logFile, 'a', 0o600) : undefined;
  const child = spawn(cmd, argv, {
    stdio: ['ignore', 'ignore', logFd ?? 'pipe'],
    detached: logFd !== undefined,
  });
  let output = '';
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  if (logFd === undefined) {
    child.stderr!.on('data', (d: Buffer) => {
      output = (output + d.toString()).slice(-20000);
    });
    child.once('exit', () => live.delete(child));
    child.once('error', () => live.delete(child));
    live.add(child);
    armExitHook();
  } else {
    closeSync(logFd);
    child.unref();
  }
  const logText = () => (options.detached ? tail(options.detached.logFile) : output);

  let stopped = false;
  const stop = async (o: { keepData?: boolean } = {}) => {
    if (!stopped) {
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    }
    if (!o.keepData) rmSync(dataDir, { recursive: true, force: true });
  };

  const endpoint = clientUrl.replace(/^https?:\/\//, '');
  try {
    await waitHealthy({
      endpoint: clientUrl,
      netns: options.netns,
      tls,
      timeoutMs: options.startTimeoutMs ?? 15000,
      exited: () => child.exitCode !== null || child.signalCode !== null,
    });
  } catch (e) {
    await stop({ keepData: !ownDir });
    throw new VxError(
      'ERR_ETCD_START',
      `etcd on ${clientUrl}${options.netns ? ` in netns "${options.netns}"` : ''} did not start: ${(e as Error).message}\n${logText().slice(-2000)}`,
    );
  }
  return {
    clientUrl,
    peerUrl,
    endpoint,
    clusterStore: `etcd://${endpoint}`,
    dataDir,
    netns: options.netns,
    pid: child.pid!,
    log: logText,
    stop,
  };
}

export interface EtcdctlOptions {
  endpoint: string;
  netns?: string;
  timeoutMs?: number;
  tls?: { certFile: string; keyFile: string; caFile: string };
}

/** Runs etcdctl against `endpoint` (inside `netns` when given); resolves with its stdout. */
export function etcdctl(args: string[], options: EtcdctlOptions) {
  const t = options.tls;
  const full = [
    '--endpoints',
    options.endpoint,
    '--dial-timeout',
    '1s',
    '--command-timeout',
    '3s',
    ...(t ? ['--cacert', t.caFile, '--cert', t.certFile, '--key', t.keyFile] : []),
    ...args,
  ];
  const [cmd, argv] = options.netns
    ? ['ip', ['netns', 'exec', options.netns, ETCDCTL_BIN, ...full]]
    : [ETCDCTL_BIN, full];
  return new Promise<string>((resolve, reject) => {
    execFile(
      cmd,
      argv,
      { env: { ...process.env, ETCDCTL_API: '3' }, timeout: options.timeoutMs ?? 5000 },
      (err, stdout, stderr) => {
        if (err) reject(new VxError('ERR_ETCD_START', `etcdctl ${args.join(' ')}: ${stderr || err.message}`));
        else resolve(stdout);
      },
    );
  });
}

async function waitHealthy(o: EtcdctlOptions & { exited: () => boolean; timeoutMs: number }) {
  const deadline = Date.now() + o.timeoutMs;
  let last = 'not yet healthy';
  while (Date.now() < deadline) {
    if (o.exited()) throw new Error('etcd exited');
    try {
      await etcdctl(['endpoint', 'health'], { endpoint: o.endpoint, netns: o.netns, tls: o.tls });
      return;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`not healthy after ${o.timeoutMs} ms: ${last}`);
}

function checkUrl(url: string, name: string, scheme: string): string {
  const re = new RegExp(`^${scheme}://(\\[[0-9a-fA-F:.]+\\]|[0-9.]+|localhost):\\d{1,5}$`);
  if (!re.test(url))
    throw new VxError('ERR_INVALID_ARG', `options.${name} must be ${scheme}://IP:PORT, got "${url}"`);
  return url;
}

/** A port free on 127.0.0.1 right now (the kernel's choice; etcd binds it a moment later). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').slice(-20000);
  } catch {
    return '';
  }
}

function armExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}
