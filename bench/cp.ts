// bench:cp -- the control plane on a fresh 3-host lab (src/lab/lab.ts: a namespace per host, an
// underlay bridge, a real etcd, one `vxnet daemon --cluster-store etcd://...` per host, kernel
// VXLAN ports), driven through the daemons' APIs as `vxnet --host hostN run -d` drives them.
//
// What is timed, and how "forwards to it" is seen: each host's datapath is read where it lives.
// - Kernel vxlan ports (`--vxlan-port kernel`): `ip netns exec <sandbox> bridge monitor fdb`
//   runs in the network's sandbox namespace of every host (vxsb-<host>-<net>), and the bench
//   stamps each line as it arrives (an add of MAC -> dst tunnel endpoint on vxlan0). This is the
//   kernel's own notification of the FDB write, so it is cheaper and finer than polling
//   `bridge fdb show` (a process per poll, ~5-10 ms each on this box) or the daemon's `GET /fdb`
//   (which runs the same command inside the daemon).
// - vxnet's TAP datapath (`--vxlan-port tap`): its FDB is in the WASM tables of the daemon's
//   engine, so `GET /fdb?network=N` of each host is polled (every 5 ms during cp-converge, every
//   250 ms during cp-scale; each answer is a read of the engine's table, no process) and an entry
//   is stamped when the first answer that holds it arrives.
//   Without the flag the daemons' default port is used; stderr says which.
// Each phase ends with a snapshot of every host (`bridge -j fdb show` / `GET /fdb`) that must agree
// with what was watched.
// - cp-converge p50/p99 (ms): one endpoint joins on host A (hosts in rotation): POST
//   /containers/create + /start of `sleep` on A, as `run -d`. Timed from the create call's start
//   until every other host's vxlan0 FDB holds the new MAC -> A's underlay address. 40 joins
//   (CP_CONVERGE_RUNS), after 3 warm-up joins (one per host: they make each host's sandbox, so
//   every other host has a datapath to program); all 40 are kept and p50/p99 taken over them.
//   The split (API call returned vs propagation after it) goes to stderr.
// - cp-scale 1000-endpoints (s): on a second network (/20, internal: no gateway veth per
//   container), 1000 `sleep` containers (CP_SCALE_ENDPOINTS) spread round-robin over the 3
//   hosts, 4 create+start in flight per daemon. Timed from the first create call until every
//   host's FDB holds all the endpoints of the two other hosts (a MAC -> their tunnel endpoints;
//   the monitor's count, checked by a snapshot). One run (it takes the whole lab's resources).
// - rss daemon-idle / daemon-1000-endpoints (MB): VmRSS of host1's daemon (pid from the lab
//   state) right after the lab is up and its first network exists, and after cp-scale; the other
//   daemons' figures go to stderr.
// The daemons run as installed: dist/ is built first (tsc, ~30 s, not timed) and the lab started
// from it, so each daemon is plain node (under tsx a daemon carries ~25 MB more: the TypeScript
// loader); `--src` runs the sources under tsx instead.
// The lab (containers, namespaces, daemons, etcd, files) is removed in `finally` and on Ctrl-C;
// the time the removal takes is printed on stderr. No baseline implementation exists for these
// (impl `vxnet` only): compare against the targets of issue 6 (p99 <= 500 ms, 1000 endpoints <=
// 60 s, RSS <= 150 MB).

import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Client } from '../src/cli/client.js';
import { listNetns } from '../src/kernel/netns.js';
import type { Lab } from '../src/lab/lab.js';
import { packageRoot } from '../src/paths.js';
import { note, percentile, record, report } from './lib.js';

const execFileP = promisify(execFile);
const CONVERGE_RUNS = Number(process.env.CP_CONVERGE_RUNS ?? 40);
const SCALE_ENDPOINTS = Number(process.env.CP_SCALE_ENDPOINTS ?? 1000);
const IN_FLIGHT = 4;
const ZERO_MAC = '00:00:00:00:00:00';

interface Ct {
  Netns: string;
  NetworkSettings: { Networks: Record<string, { IPAddress: string; MacAddress: string }> };
}

const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The remote FDB entries (MAC -> tunnel endpoint) of one host's port of a network, as its
 * datapath holds them: the kernel vxlan0 through `bridge monitor fdb` in the sandbox (each add
 * stamped as it arrives), or vxnet's TAP datapath through `GET /fdb` polled every `pollMs`
 * (stamped when the answer that first holds it arrives).
 */
class FdbWatch {
  /** MAC -> (dst, when it was added). */
  readonly entries = new Map<string, { dst: string; at: number }>();
  private child?: ChildProcess;
  private stopped = false;
  private waiters: (() => void)[] = [];
  private buf = '';

  constructor(
    readonly host: string,
    readonly sandbox: string,
    readonly kernel: boolean,
    private readonly client: Client,
    private readonly network: string,
    readonly pollMs: number,
  ) {}

  async start(): Promise<void> {
    if (!this.kernel) {
      await this.poll();
      void (async () => {
        while (!this.stopped) {
          const t = now();
          await this.poll().catch(() => undefined);
          await sleep(Math.max(0, this.pollMs - (now() - t)));
        }
      })();
      return;
    }
    const child = spawn('ip', ['netns', 'exec', this.sandbox, 'bridge', 'monitor', 'fdb'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    this.child = child;
    child.stdout!.on('data', (d: Buffer) => {
      const at = now();
      this.buf += d.toString();
      const lines = this.buf.split('\n');
      this.buf = lines.pop()!;
      for (const l of lines) this.line(l, at);
      this.wake();
    });
    await new Promise((r, j) => {
      child.once('spawn', r);
      child.once('error', j);
    });
    // bridge monitor has subscribed once it runs; what was programmed before comes from a snapshot.
    await sleep(200);
    for (const e of await this.snapshot())
      if (!this.entries.has(e.mac)) this.entries.set(e.mac, { dst: e.dst, at: now() });
  }

  /** The port's remote entries read at once (the kernel's table, or the daemon's answer). */
  async snapshot(): Promise<{ mac: string; dst: string }[]> {
    if (this.kernel) return fdbSnapshot(this.sandbox);
    const rows = await this.client.call<{ mac: string; vtep?: string }[]>(
      'GET',
      `/fdb?network=${this.network}`,
    );
    return rows
      .filter((r) => r.vtep !== undefined && r.mac !== ZERO_MAC)
      .map((r) => ({ mac: r.mac.toLowerCase(), dst: r.vtep! }));
  }

  private async poll(): Promise<void> {
    const rows = await this.snapshot();
    const at = now();
    const seen = new Set<string>();
    for (const r of rows) {
      seen.add(r.mac);
      if (this.entries.get(r.mac)?.dst !== r.dst) this.entries.set(r.mac, { dst: r.dst, at });
    }
    for (const mac of [...this.entries.keys()]) if (!seen.has(mac)) this.entries.delete(mac);
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private line(l: string, at: number): void {
    const m = /^(Deleted )?([0-9a-f:]{17}) dev vxlan0 dst (\S+)/.exec(l);
    if (!m || m[2] === ZERO_MAC) return;
    if (m[1]) {
      if (this.entries.get(m[2]!)?.dst === m[3]) this.entries.delete(m[2]!);
    } else if (this.entries.get(m[2]!)?.dst !== m[3]) this.entries.set(m[2]!, { dst: m[3]!, at });
  }

  /** Resolves once `pred` holds (checked on every change seen). */
  async until(pred: () => boolean, ms: number, what: string): Promise<void> {
    const end = now() + ms;
    while (!pred()) {
      if (now() > end) throw new Error(`${this.host}: timed out after ${ms} ms waiting for ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  stop(): void {
    this.stopped = true;
    this.child?.kill();
  }
}

async function fdbSnapshot(sandbox: string): Promise<{ mac: string; dst: string }[]> {
  const { stdout } = await execFileP(
    'ip',
    ['netns', 'exec', sandbox, 'bridge', '-j', 'fdb', 'show', 'dev', 'vxlan0'],
    {
      maxBuffer: 64 << 20,
    },
  );
  const rows = stdout.trim() === '' ? [] : (JSON.parse(stdout) as { mac: string; dst?: string }[]);
  return rows.filter((r) => r.dst !== undefined && r.mac !== ZERO_MAC) as { mac: string; dst: string }[];
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

async function runDetached(c: Client, name: string, net: string): Promise<void> {
  await c.call('POST', `/containers/create?name=${name}`, {
    Cmd: ['sleep', '3600'],
    HostConfig: { NetworkMode: net },
  });
  await c.call('POST', `/containers/${name}/start`);
}

/**
 * The lab module the daemons are started from: dist/ (built first, as `vxnet` is installed: plain
 * node, no TypeScript loader in each daemon), or the sources under tsx with --src.
 */
async function labModule(): Promise<typeof import('../src/lab/lab.js')> {
  if (process.argv.includes('--src')) return import('../src/lab/lab.js');
  const root = packageRoot();
  const entry = join(root, 'dist/src/lab/lab.js');
  const t0 = Date.now();
  note('building dist/ (tsc -p tsconfig.build.json) so the daemons run as installed; --src runs the sources');
  const r = spawnSync(
    process.execPath,
    [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
    {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
    },
  );
  // tsc emits despite type errors elsewhere in the tree; what matters is a fresh lab module.
  if (r.status !== 0)
    note(`tsc exited ${r.status}: ${(r.stdout + r.stderr).trim().split('\n').slice(0, 5).join('\n')}`);
  if ((statSync(entry, { throwIfNoEntry: false })?.mtimeMs ?? 0) < t0 - 1000)
    throw new Error(`${entry} was not built; run npm run build:ts, or bench:cp --src`);
  return import(entry);
}

const sb = (hostId: string, netId: string) => `vxsb-${hostId}-${netId.slice(0, 12)}`;

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : process.argv[i + 1];
}

async function main(): Promise<void> {
  const { labDown, labUp } = await labModule();
  const prefix = `cp${randomBytes(2).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'vxnet-bench-cp-'));
  const abort = new AbortController();
  const monitors: FdbWatch[] = [];
  let lab: Lab | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () => {
    cleaning ??= (async () => {
      for (const m of monitors) m.stop();
      const t0 = now();
      const r = await labDown({ dir });
      rmSync(dir, { recursive: true, force: true });
      const left = (await listNetns()).filter(
        (n) => n.startsWith(`${prefix}-`) || n.includes(`-${prefix}host`),
      );
      note(
        `cleanup: lab down took ${((now() - t0) / 1000).toFixed(1)} s (${r.namespaces.length} namespaces, ` +
          `${r.processes.length} processes); namespaces left: ${left.length}`,
      );
    })();
    return cleaning;
  };
  process.once('SIGINT', () => {
    note('interrupted: removing the lab');
    abort.abort();
    void cleanup().finally(() => process.exit(130));
  });
  try {
    note(`lab up: 3 hosts (prefix ${prefix}, dir ${dir})`);
    const port = flag('--vxlan-port');
    lab = await labUp({
      hosts: 3,
      prefix,
      dir,
      signal: abort.signal,
      daemonArgs: port === undefined ? [] : ['--vxlan-port', port],
    });
    const hosts = lab.state.hosts;
    const clients = hosts.map((h) => lab!.client(h.name));
    const pids = hosts.map((h) => h.pid!);
    const kind = (await clients[0]!.call<{ OverlayPorts: string }>('GET', '/info')).OverlayPorts;
    const kernel = kind === 'kernel-vxlan';
    note(
      `VXLAN ports: ${kind}; FDBs watched ${kernel ? 'by bridge monitor fdb in each sandbox' : 'by polling GET /fdb'}`,
    );
    const watch = (i: number, netId: string, name: string, pollMs: number) =>
      new FdbWatch(hosts[i]!.name, sb(hosts[i]!.hostId, netId), kernel, clients[i]!, name, pollMs);

    // --- cp-converge ---------------------------------------------------------------------------
    const net = await clients[0]!.call<{ Id: string }>('POST', '/networks/create', {
      Name: 'cpconv',
      Internal: true,
      IPAM: { Config: [{ Subnet: '10.77.0.0/24' }] },
    });
    await sleep(1000);
    const idle = rssMb(pids[0]!);
    note(`rss idle: ${hosts.map((h, i) => `${h.name} ${rssMb(pids[i]!).toFixed(1)} MB`).join(', ')}`);
    record({ bench: 'rss', case: 'daemon-idle', impl: 'vxnet', value: idle, unit: 'MB' });

    for (const [i, c] of clients.entries()) await runDetached(c, `w${i}`, 'cpconv');
    const conv = hosts.map((_, i) => watch(i, net.Id, 'cpconv', 5));
    monitors.push(...conv);
    await Promise.all(conv.map((m) => m.start()));
    const total: number[] = [];
    const apis: number[] = [];
    const props: number[] = [];
    for (let k = 0; k < CONVERGE_RUNS; k++) {
      const a = k % hosts.length;
      const name = `j${k}`;
      const t0 = now();
      await runDetached(clients[a]!, name, 'cpconv');
      const tApi = now();
      const ct = await clients[a]!.call<Ct>('GET', `/containers/${name}/json`);
      const mac = ct.NetworkSettings.Networks.cpconv!.MacAddress.toLowerCase();
      const vtep = hosts[a]!.ip;
      let last = 0;
      for (const [j, m] of conv.entries()) {
        if (j === a) continue;
        await m.until(() => m.entries.get(mac)?.dst === vtep, 10000, `${mac} -> ${vtep}`);
        last = Math.max(last, m.entries.get(mac)!.at);
      }
      // Forwarding may be in place before the call returns (the endpoint is published at create).
      total.push(last - t0);
      apis.push(tApi - t0);
      props.push(last - tApi);
    }
    // The monitors' view against the kernel's: every joined endpoint on every other host.
    for (const [j, m] of conv.entries()) {
      const snap = new Map((await m.snapshot()).map((e) => [e.mac, e.dst]));
      for (const [mac, e] of m.entries)
        if (snap.get(mac) !== e.dst)
          throw new Error(`${hosts[j]!.name}: monitor saw ${mac} -> ${e.dst}, FDB has ${snap.get(mac)}`);
      if (snap.size !== m.entries.size)
        throw new Error(`${hosts[j]!.name}: FDB ${snap.size} entries, monitor ${m.entries.size}`);
    }
    const p = (xs: number[], q: number) => percentile(xs, q).toFixed(1);
    note(
      `cp-converge over ${total.length} joins: total p50 ${p(total, 50)} p99 ${p(total, 99)} ms; ` +
        `API call (create+start) p50 ${p(apis, 50)} p99 ${p(apis, 99)} ms; ` +
        `FDBs complete relative to the call's return p50 ${p(props, 50)} p99 ${p(props, 99)} ms ` +
        `(negative: before it returned)`,
    );
    record({ bench: 'cp-converge', case: 'p50', impl: 'vxnet', value: percentile(total, 50), unit: 'ms' });
    record({ bench: 'cp-converge', case: 'p99', impl: 'vxnet', value: percentile(total, 99), unit: 'ms' });
    for (const m of conv) m.stop();

    // --- cp-scale ------------------------------------------------------------------------------
    const big = await clients[1]!.call<{ Id: string }>('POST', '/networks/create', {
      Name: 'cpscale',
      Internal: true,
      IPAM: { Config: [{ Subnet: '10.80.0.0/20' }] },
    });
    // One container per host first, so each host has the network's sandbox to watch.
    for (const [i, c] of clients.entries()) await runDetached(c, `z${i}`, 'cpscale');
    const scale = hosts.map((_, i) => watch(i, big.Id, 'cpscale', 250));
    monitors.push(...scale);
    await Promise.all(scale.map((m) => m.start()));
    const n = SCALE_ENDPOINTS - hosts.length;
    const perHost = hosts.map((_, i) =>
      Array.from({ length: n }, (_, k) => k).filter((k) => k % hosts.length === i),
    );
    const localOf = hosts.map((_, i) => perHost[i]!.length + 1);
    const want = (j: number) => SCALE_ENDPOINTS - localOf[j]!;
    const remoteCount = (j: number) => {
      let c = 0;
      for (const e of scale[j]!.entries.values()) if (e.dst !== hosts[j]!.ip) c++;
      return c;
    };
    const t0 = now();
    let made = 0;
    const progress = setInterval(() => {
      note(
        `  ${((now() - t0) / 1000).toFixed(0)} s: ${made + hosts.length} endpoints made; remote entries ` +
          scale.map((_, j) => `${hosts[j]!.name} ${remoteCount(j)}/${want(j)}`).join(', '),
      );
    }, 5000);
    try {
      await Promise.all(
        perHost.map(async (ks, i) => {
          let next = 0;
          await Promise.all(
            Array.from({ length: IN_FLIGHT }, async () => {
              while (next < ks.length) {
                const k = ks[next++]!;
                await runDetached(clients[i]!, `s${k}`, 'cpscale');
                made++;
              }
            }),
          );
        }),
      );
      const tMade = now();
      for (const [j, m] of scale.entries())
        await m.until(() => remoteCount(j) >= want(j), 120000, `${want(j)} remote endpoints`);
      const tAll = now();
      note(
        `cp-scale: ${SCALE_ENDPOINTS} endpoints made in ${((tMade - t0) / 1000).toFixed(1)} s, all hosts' FDBs ` +
          `complete ${((tAll - tMade) / 1000).toFixed(1)} s later`,
      );
      record({
        bench: 'cp-scale',
        case: `${SCALE_ENDPOINTS}-endpoints`,
        impl: 'vxnet',
        value: (tAll - t0) / 1000,
        unit: 's',
      });
    } finally {
      clearInterval(progress);
    }
    for (const [j, m] of scale.entries()) {
      const snap = await m.snapshot();
      const remote = snap.filter((e) => e.dst !== hosts[j]!.ip && hosts.some((h) => h.ip === e.dst)).length;
      if (remote !== want(j))
        throw new Error(`${hosts[j]!.name}: FDB holds ${remote} remote endpoints, want ${want(j)}`);
    }
    await sleep(1000);
    note(
      `rss with ${SCALE_ENDPOINTS} endpoints: ${hosts.map((h, i) => `${h.name} ${rssMb(pids[i]!).toFixed(1)} MB`).join(', ')}`,
    );
    record({
      bench: 'rss',
      case: `daemon-${SCALE_ENDPOINTS}-endpoints`,
      impl: 'vxnet',
      value: rssMb(pids[0]!),
      unit: 'MB',
    });
  } finally {
    await cleanup();
  }
  report();
}

await main();
