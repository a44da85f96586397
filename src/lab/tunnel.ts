// `vxnet tunnel` as a lab part: one userspace VXLAN endpoint started in a simulated host's
// namespace (src/lab/pair.ts), seen from outside through its command-line contract only.
//
// Owns: the tunnel process. Starting it (`ip netns exec HOST node ... tunnel --name ...`), waiting
// for its `vxnet tunnel: ready` line on stderr, attaching its TAP to the host's bridge, reading its
// counters (SIGUSR1 -> one JSON line on stdout), and stopping it (SIGTERM, then SIGKILL after a
// grace period) so a failed test never leaves it running. The counter JSON is read tolerantly
// (flat or nested names, drops as an object or an array indexed by DROP_*), because the tests
// assert on reasons, not on a layout.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import {
  DROP_AUTH,
  DROP_CLEARTEXT,
  DROP_L2_MISS,
  DROP_L3_MISS,
  DROP_LOOP,
  DROP_MALFORMED,
  DROP_NO_PEERS,
  DROP_OVERSIZE,
  DROP_REPLAY,
  DROP_TRUNCATED,
  DROP_UNKNOWN_PEER,
  DROP_UNKNOWN_VNI,
  DROP_VXLAN_FLAGS,
  DROP_VXLAN_RESERVED,
} from '../../assembly/constants.js';
import { checkNetnsName, ip } from '../kernel/exec.js';
import type { Pair } from './pair.js';

const ROOT = join(import.meta.dirname, '..', '..');
const MAIN_TS = join(ROOT, 'src', 'cli', 'main.ts');
const BIN = join(ROOT, 'bin', 'vxnet.js');
const READY = 'vxnet tunnel: ready';

export interface TunnelOptions {
  name?: string;
  vni: number;
  local: string;
  remotes: string[];
  port?: number;
  learning?: boolean;
  underlay?: 'udp' | 'raw';
  mtu?: number;
  /** `IP=MAC` entries for the ARP proxy. */
  neigh?: string[];
  /** `MAC=REMOTE` static FDB entries. */
  fdb?: string[];
  /** Further command-line options as they are (e.g. ['--realtime', '10'], ['--offload=false']). */
  extraArgs?: string[];
  /** Bridge (in the same namespace) the TAP joins once ready; false to leave it alone. Default br0. */
  bridge?: string | false;
  readyTimeoutMs?: number;
  /** Run the TypeScript sources through tsx (default: what the tree holds now) or bin/vxnet.js (dist if built). */
  entry?: 'src' | 'bin';
}

/** What `vxnet tunnel` prints on SIGUSR1 and on exit. */
export interface TunnelStats {
  vni: number;
  /** What could be attributed to the VNI. */
  counters: Record<string, unknown>;
  peers: { addr: string; port: number; counters: Record<string, unknown> }[];
  /** Every datagram, also those dropped before a VNI was known (unknown VNI, bad header). */
  global?: Record<string, unknown>;
}

export interface Tunnel {
  ns: string;
  name: string;
  pid: number;
  argv: string[];
  /** Sends SIGUSR1 and resolves the JSON line it prints. */
  stats(timeoutMs?: number): Promise<TunnelStats>;
  /**
   * `signal` (SIGTERM by default; SIGINT also ends it), SIGKILL after `graceMs`; resolves how it
   * exited and its last counters. Can run twice.
   */
  stop(o?: { signal?: 'SIGTERM' | 'SIGINT'; graceMs?: number }): Promise<TunnelExit>;
  /** Everything it printed on stderr so far (for failure messages). */
  log(): string;
}

export interface TunnelExit {
  code: number | null;
  signal: string | null;
  /** The JSON line printed right before exit, if any. */
  stats?: TunnelStats;
  /** True when the TAP was still there after the process ended (removed here then). */
  tapLeftBehind: boolean;
}

/** The command-line arguments of `vxnet tunnel` for `o` (exported for tests of the contract). */
export function tunnelArgs(o: TunnelOptions): string[] {
  const a = ['tunnel', '--name', o.name ?? 'vx0', '--vni', String(o.vni), '--local', o.local];
  for (const r of o.remotes) a.push('--remote', r);
  if (o.port !== undefined) a.push('--port', String(o.port));
  if (o.learning) a.push('--learning');
  if (o.underlay !== undefined) a.push('--underlay', o.underlay);
  if (o.mtu !== undefined) a.push('--mtu', String(o.mtu));
  for (const n of o.neigh ?? []) a.push('--neigh', n);
  for (const f of o.fdb ?? []) a.push('--fdb', f);
  a.push(...(o.extraArgs ?? []));
  return a;
}

const running = new Set<Tunnel>();

/** Stops every tunnel this process started and has not stopped yet (an after-all backstop). */
export async function stopAllTunnels(): Promise<void> {
  await Promise.all([...running].map((t) => t.stop()));
}

/** Starts `vxnet tunnel` in namespace `ns` and resolves once it is ready and attached. */
export async function startTunnel(ns: string, o: TunnelOptions): Promise<Tunnel> {
  const name = o.name ?? 'vx0';
  const entry = o.entry === 'bin' ? [BIN] : ['--import', 'tsx', MAIN_TS];
  const argv = [
    'netns',
    'exec',
    checkNetnsName(ns),
    process.execPath,
    ...entry,
    ...tunnelArgs({ ...o, name }),
  ];
  // `ip netns exec` execs the command, so the child's pid is the tunnel's: signals reach it.
  const child = spawn('ip', argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const t = track(child, ns, name, argv);
  try {
    await t.ready(o.readyTimeoutMs ?? 30000);
    if (o.bridge !== false) {
      const at = { netns: ns, action: `attach tunnel TAP "${name}" to ${o.bridge ?? 'br0'}` };
      await ip(['link', 'set', 'dev', name, 'master', o.bridge ?? 'br0'], at);
      await ip(['link', 'set', 'dev', name, 'up'], at);
    }
  } catch (e) {
    await t.tunnel.stop();
    throw e;
  }
  return t.tunnel;
}

/**
 * Starts `vxnet tunnel` on host `i` of `pair` towards the other host: the pair's VNI, port and
 * MTU, local and remote underlay addresses filled in; `o` adds or overrides options.
 */
export function startPairTunnel(pair: Pair, i: 0 | 1, o: Partial<TunnelOptions> = {}): Promise<Tunnel> {
  const h = pair.hosts[i];
  const peer = pair.hosts[1 - i]!;
  return startTunnel(h.ns, {
    vni: pair.vni,
    port: pair.port,
    mtu: pair.mtu,
    local: h.underlayIp,
    remotes: [peer.underlayIp],
    ...o,
  });
}

function track(child: ChildProcess, ns: string, name: string, argv: string[]) {
  let err = '';
  let outBuf = '';
  const lines: string[] = [];
  const waiters: ((line: string) => void)[] = [];
  let readyResolve: (() => void) | undefined;
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  let done: { code: number | null; signal: string | null } | undefined;
  exited.then((x) => {
    done = x;
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    if (readyResolve && err.includes(READY)) readyResolve();
  });
  child.stdout!.on('data', (d: Buffer) => {
    outBuf += d.toString();
    for (let nl = outBuf.indexOf('\n'); nl >= 0; nl = outBuf.indexOf('\n')) {
      const line = outBuf.slice(0, nl).trim();
      outBuf = outBuf.slice(nl + 1);
      if (!line) continue;
      const w = waiters.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  const nextLine = (timeoutMs: number): Promise<string> => {
    const queued = lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const w = (line: string) => {
        clearTimeout(timer);
        resolve(line);
      };
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1);
        reject(new Error(`vxnet tunnel in ${ns} printed no counters within ${timeoutMs} ms; stderr: ${err}`));
      }, timeoutMs);
      waiters.push(w);
    });
  };
  let stopping: Promise<TunnelExit> | undefined;
  const tunnel: Tunnel = {
    ns,
    name,
    pid: child.pid ?? -1,
    argv,
    log: () => err,
    async stats(timeoutMs = 5000) {
      if (done) throw new Error(`vxnet tunnel in ${ns} has exited (${done.code ?? done.signal}): ${err}`);
      lines.length = 0;
      child.kill('SIGUSR1');
      return parseStats(await nextLine(timeoutMs));
    },
    stop(o = {}) {
      stopping ??= (async () => {
        running.delete(tunnel);
        // A line still queued from a SIGUSR1 is stale; one printed by a process that already
        // ended is its final line and stays.
        if (!done) {
          lines.length = 0;
          child.kill(o.signal ?? 'SIGTERM');
        }
        const kill = setTimeout(() => child.kill('SIGKILL'), o.graceMs ?? 5000);
        const x = await exited;
        clearTimeout(kill);
        // The final counters line, if the tunnel printed one before exiting.
        const last = lines.pop();
        const tapLeftBehind = await removeTap(ns, name);
        return { ...x, stats: last === undefined ? undefined : parseStats(last), tapLeftBehind };
      })();
      return stopping;
    },
  };
  running.add(tunnel);
  const ready = (timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`vxnet tunnel in ${ns} not ready within ${timeoutMs} ms; stderr: ${err}`)),
        timeoutMs,
      );
      readyResolve = () => {
        clearTimeout(timer);
        resolve();
      };
      if (err.includes(READY)) readyResolve();
      exited.then((x) => {
        clearTimeout(timer);
        reject(
          new Error(`vxnet tunnel in ${ns} exited (${x.code ?? x.signal}) before ready; stderr: ${err}`),
        );
      });
    });
  return { tunnel, ready };
}

/** Deletes the TAP if it outlived its process; true when it had to. */
async function removeTap(ns: string, name: string): Promise<boolean> {
  try {
    await ip(['link', 'del', 'dev', name], { netns: ns, action: `delete leftover TAP "${name}"` });
    return true;
  } catch {
    return false;
  }
}

function parseStats(line: string): TunnelStats {
  try {
    return JSON.parse(line) as TunnelStats;
  } catch {
    throw new Error(`vxnet tunnel printed a counters line that is not JSON: ${line}`);
  }
}

// ---- Reading counters -----------------------------------------------------------------------

/** Drop reasons by DROP_* number, as names (what a counters array is indexed by). */
export const DROP_REASON_NAMES: Record<number, string> = {
  [DROP_TRUNCATED]: 'truncated',
  [DROP_VXLAN_FLAGS]: 'vxlan-flags',
  [DROP_VXLAN_RESERVED]: 'vxlan-reserved',
  [DROP_UNKNOWN_VNI]: 'unknown-vni',
  [DROP_UNKNOWN_PEER]: 'unknown-peer',
  [DROP_L2_MISS]: 'l2-miss',
  [DROP_L3_MISS]: 'l3-miss',
  [DROP_MALFORMED]: 'malformed',
  [DROP_OVERSIZE]: 'oversize',
  [DROP_NO_PEERS]: 'no-peers',
  [DROP_LOOP]: 'loop',
  [DROP_AUTH]: 'auth',
  [DROP_REPLAY]: 'replay',
  [DROP_CLEARTEXT]: 'cleartext',
};

const norm = (s: string) => s.toLowerCase().replace(/[^a-z0-9]/g, '');

/** Every numeric leaf of a counters object as [normalised path, value]; arrays under "drop*" map to reason names. */
function leaves(o: unknown, path = ''): [string, number][] {
  if (typeof o === 'number') return [[norm(path), o]];
  if (Array.isArray(o)) {
    const named = /drop/i.test(path);
    return o.flatMap((v, i) =>
      leaves(v, `${path}.${named ? (DROP_REASON_NAMES[i] ?? String(i)) : String(i)}`),
    );
  }
  if (o && typeof o === 'object') return Object.entries(o).flatMap(([k, v]) => leaves(v, `${path}.${k}`));
  return [];
}

/** The drops counted under `reason` (e.g. 'unknown-vni') in a counters object. */
export function drops(counters: unknown, reason: string): number {
  const r = norm(reason);
  let n = 0;
  for (const [p, v] of leaves(counters)) if (p.includes('drop') && p.endsWith(r)) n += v;
  return n;
}

/** The sum of the drop counters of every known reason. */
export function totalDrops(counters: unknown): number {
  return Object.values(DROP_REASON_NAMES).reduce((n, r) => n + drops(counters, r), 0);
}

/** A named counter (e.g. 'rxPackets'), matched without case or separators; 0 when absent. */
export function counter(counters: unknown, name: string): number {
  const r = norm(name);
  for (const [p, v] of leaves(counters)) if (p === r || p.endsWith(r)) return v;
  return 0;
}
