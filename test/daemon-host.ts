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
import type { RunningDaemon } from '../src/daemon/daemon.js';
import { addAddr } from '../src/kernel/addr.js';
import { ensureVeth, setLink } from '../src/kernel/link.js';
import { deleteNetns, ensureNetns, execInNetns, listNetns } from '../src/kernel/netns.js';
import { replaceRoute } from '../src/kernel/route.js';
import { createMemoryStore } from '../src/store/memory.js';
import type { Store } from '../src/store/store.js';

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

/** A handle on `store` for one of several in-process daemons: closing the store is the test's job. */
export function sharedStore(store: Store): Store {
  return {
    get: (k) => store.get(k),
    list: (p) => store.list(p),
    put: (k, v, o) => store.put(k, v, o),
    delete: (k) => store.delete(k),
    txn: (t) => store.txn(t),
    watch: (p, cb, o) => store.watch(p, cb, o),
    grantLease: (o) => store.grantLease(o),
    close: async () => undefined,
  };
}

/** Polls `f` every 50 ms until it returns something truthy, at most `tries` times. */
export async function until<T>(
  what: string,
  f: () => Promise<T | undefined | false>,
  tries = 100,
): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await f();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export interface UnderlayHost {
  ns: string;
  id: string;
  ip: string;
  dir: string;
}

/**
 * Two host namespaces joined by a veth underlay (`ul0` in host 1, `ul0p` in host 2, addresses
 * `${subnet}.1` and `.2`/24), a memory store for their daemons, and the cleanup registered on `t`:
 * the `first` hooks, then the daemons the test pushes onto `daemons`, the store, every namespace
 * named after a host id, the hosts and their state dirs.
 */
export async function twoHosts(
  t: { after(fn: () => Promise<void>): void },
  o: { ns: string; id: string; subnet: string; dir: string },
) {
  const tag = randomBytes(3).toString('hex');
  const hosts: UnderlayHost[] = [1, 2].map((i) => ({
    ns: `${o.ns}${i}-${tag}`,
    id: `${o.id}${i}${tag}`,
    ip: `${o.subnet}.${i}`,
    dir: mkdtempSync(join(tmpdir(), `${o.dir}${i}-`)),
  }));
  const store = createMemoryStore();
  const daemons: (RunningDaemon | undefined)[] = [];
  const first: (() => void)[] = [];
  t.after(async () => {
    for (const k of first) k();
    for (const d of daemons) await d?.close();
    await store.close();
    for (const n of await listNetns())
      if (hosts.some((h) => n.includes(`-${h.id}-`))) await deleteNetns(n, { killProcesses: true });
    for (const h of hosts) {
      await deleteNetns(h.ns, { killProcesses: true });
      rmSync(h.dir, { recursive: true, force: true });
    }
  });
  const [h1, h2] = hosts as [UnderlayHost, UnderlayHost];
  for (const h of hosts) await ensureNetns(h.ns);
  await ensureVeth({ name: 'ul0', peer: 'ul0p', netns: h1.ns, peerNetns: h2.ns });
  await setLink('ul0p', { netns: h2.ns, up: true });
  await setLink('ul0', { netns: h1.ns, up: true });
  await addAddr('ul0', `${h1.ip}/24`, { netns: h1.ns });
  await addAddr('ul0p', `${h2.ip}/24`, { netns: h2.ns });
  return { hosts, store, daemons, first };
}
