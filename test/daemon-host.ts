// A simulated host for the daemon and CLI tests: a namespace `host` with an uplink veth to a
// namespace `outside` that plays the internet (203.0.113.1 on its loopback, no route back to the
// hosts' private ranges, so only NAT lets a container's packets be answered), and a vxnet daemon
// running inside `host` (nsenter --net, so the namespaces it makes are visible here).
// Everything is named with a random tag and removed by `destroy()`, which the tests register in
// t.after so it runs also on failure.

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '../src/cli/client.js';
import { addAddr } from '../src/kernel/addr.js';
import { ensureVeth, setLink } from '../src/kernel/link.js';
import { deleteNetns, ensureNetns, execInNetns, listNetns } from '../src/kernel/netns.js';
import { replaceRoute } from '../src/kernel/route.js';

export const root = process.getuid?.() === 0;
export const OUTSIDE_IP = '203.0.113.1';
const MAIN = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');

export interface TestHost {
  tag: string;
  hostId: string;
  ns: string;
  outside: string;
  stateDir: string;
  socket: string;
  client: Client;
  daemon?: ChildProcess;
  /** Output of the current daemon (JSON log lines). */
  output: string[];
  /** Starts the daemon inside the host: by `nsenter --net` (default) or `ip netns exec`. */
  start(
    env?: Record<string, string>,
    o?: { launcher?: 'nsenter' | 'ip-netns-exec'; args?: string[] },
  ): Promise<ChildProcess>;
  /** Waits for the daemon process to exit; resolves its exit code or signal. */
  exited(): Promise<number | string>;
  /** Namespaces of this host's vxnet objects. */
  namespaces(): Promise<string[]>;
  cli(
    args: string[],
    env?: Record<string, string>,
  ): Promise<{ code: number; stdout: string; stderr: string }>;
  destroy(): Promise<void>;
}

export async function createHost(): Promise<TestHost> {
  const tag = randomBytes(3).toString('hex');
  const hostId = `t${tag}`;
  const stateDir = mkdtempSync(join(tmpdir(), `vxnet-d-${tag}-`));
  const h: TestHost = {
    tag,
    hostId,
    ns: `vxdh-${tag}`,
    outside: `vxdo-${tag}`,
    stateDir,
    socket: join(stateDir, 'vxnet.sock'),
    client: new Client(join(stateDir, 'vxnet.sock')),
    output: [],
    async start(env = {}, o = {}) {
      const enter =
        o.launcher === 'ip-netns-exec'
          ? ['ip', 'netns', 'exec', h.ns]
          : ['nsenter', `--net=/run/netns/${h.ns}`];
      const child = spawn(
        enter[0]!,
        [
          ...enter.slice(1),
          process.execPath,
          '--import',
          'tsx',
          MAIN,
          'daemon',
          '--state-dir',
          stateDir,
          '--socket',
          h.socket,
          '--host-id',
          hostId,
          ...(o.args ?? []),
        ],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
      );
      h.daemon = child;
      h.output = [];
      child.stdout!.on('data', (d: Buffer) => h.output.push(d.toString()));
      child.stderr!.on('data', (d: Buffer) => h.output.push(d.toString()));
      const exit = new Promise<number | string>((resolve) =>
        child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)),
      );
      h.exited = () => exit;
      // 20 s: through tsx on a loaded 2-core machine a start takes 3-6 s, more with a cold
      // transform cache (the first run after an edit compiles the daemon and the I/O worker).
      for (const end = Date.now() + 20_000; Date.now() < end; ) {
        const ok = await h.client.raw('GET', '/_ping').then(
          (r) => r.status === 200,
          () => false,
        );
        if (ok) return child;
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`daemon exited early: ${h.output.join('')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`daemon did not answer: ${h.output.join('')}`);
    },
    exited: async () => -1,
    async namespaces() {
      const all = [...(await listNetns()), ...(await listNetns({ stale: true }))];
      return all.filter((n) => n.includes(`-${hostId}-`)).sort();
    },
    cli(args, env = {}) {
      return new Promise((resolve) => {
        const child = spawn(
          process.execPath,
          ['--import', 'tsx', MAIN, '-H', `unix://${h.socket}`, ...args],
          {
            env: { ...process.env, ...env },
          },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => {
          stdout += d.toString();
        });
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
        });
        child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
      });
    },
    async destroy() {
      if (h.daemon && h.daemon.exitCode === null && h.daemon.signalCode === null) {
        h.daemon.kill('SIGKILL');
        await h.exited();
      }
      for (const n of await h.namespaces()) await deleteNetns(n, { killProcesses: true });
      await deleteNetns(h.ns, { killProcesses: true });
      await deleteNetns(h.outside, { killProcesses: true });
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
  try {
    await ensureNetns(h.ns);
    await ensureNetns(h.outside);
    await ensureVeth({ name: 'up0', peer: 'up0o', netns: h.ns, peerNetns: h.outside });
    await setLink('up0', { netns: h.ns, up: true });
    await setLink('up0o', { netns: h.outside, up: true });
    await addAddr('up0', '192.168.200.1/24', { netns: h.ns });
    await addAddr('up0o', '192.168.200.2/24', { netns: h.outside });
    await addAddr('lo', `${OUTSIDE_IP}/32`, { netns: h.outside });
    await replaceRoute({ netns: h.ns, dst: 'default', via: '192.168.200.2' });
  } catch (e) {
    await h.destroy();
    throw e;
  }
  return h;
}

/** True when one ping from `netns` to `dest` is answered within a second. */
export async function pings(netns: string, dest: string): Promise<boolean> {
  try {
    await execInNetns(netns, 'ping', ['-c', '1', '-W', '1', '-q', dest]);
    return true;
  } catch {
    return false;
  }
}
