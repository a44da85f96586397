// The lab: N simulated hosts on this machine, each running a vxnet daemon on one shared etcd.
//
//      [host1] eth0 192.168.99.11 ─┐                     ┌─ eth0 192.168.99.2 [etcd]
//      [host2] eth0 192.168.99.12 ─┼── br0 [vxlab-ul] ───┘   (etcd :2379, its own namespace)
//      [hostN] eth0 192.168.99.1N ─┘
//
// Owns: the lab's namespaces (one per host, one holding the underlay bridge, one for etcd), the
// veth pairs between them, etcd, one daemon per host (`nsenter --net=/run/netns/HOST vxnet
// daemon --cluster-store etcd://... --cluster-advertise IP`, so it keeps the machine's mount
// namespace and the namespaces it makes are visible to everyone), and the lab state file.
// Why shaped so:
// - Everything lives in namespaces made here; the root namespace's addresses, routes and firewall
//   are never touched, so the lab can run on any machine next to anything else.
// - The state file is written *before* anything is made (the plan: every name, address and
//   path), and updated as processes start. `labDown` works from it alone, so it removes a lab
//   whose `labUp` crashed halfway: every planned namespace (with whatever runs inside), the
//   daemons' own namespaces (vxsb-/vxct-<host id>-...), the processes it recorded (pid + start
//   time, so a reused pid is never killed), and the files.
// - Daemons and etcd are detached (their own process group, output in log files) so that
//   `vxnet lab up` can exit and leave the lab running; tests use the same code through
//   `labUp()`/`labDown()` with a unique `prefix` and `dir`, so labs never collide.

import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Client } from '../cli/client.js';
import { startTime } from '../daemon/procs.js';
import { VxError } from '../errors.js';
import { formatCidr, formatIp, parseCidr } from '../ipam/cidr.js';
import { addAddr } from '../kernel/addr.js';
import { attachPort, ensureBridge } from '../kernel/bridge.js';
import { ensureVeth, setLink } from '../kernel/link.js';
import { deleteNetns, ensureNetns, listNetns } from '../kernel/netns.js';
import { packageRoot } from '../paths.js';
import { ETCD_BIN, startEtcd } from './etcd.js';

export const DEFAULT_LAB_DIR = '/run/vxnet/lab';
export const DEFAULT_LAB_SUBNET = '192.168.99.0/24';
export const MAX_LAB_HOSTS = 16;
const STATE_FILE = 'lab.json';
const ETCD_CLIENT_PORT = 2379;
const ETCD_PEER_PORT = 2380;

export interface LabOptions {
  /** Number of hosts, 1-16 (default 2). */
  hosts?: number;
  /** Underlay subnet (IPv4, /8-/27; default 192.168.99.0/24): etcd .2, hostN .(10+N). */
  subnet?: string;
  /** Where the state file, sockets, state dirs and logs go (default /run/vxnet/lab, $VXNET_LAB_DIR). */
  dir?: string;
  /** Prefix of namespace names and host ids ([a-z0-9]{0,8}, default none: host1, host2, ...). */
  prefix?: string;
  /** Extra `vxnet daemon` arguments (e.g. ['--vxlan-port', 'tap']). */
  daemonArgs?: string[];
  /** Told what is being done, one line at a time. */
  progress?: (line: string) => void;
  /** Stops building between steps (Ctrl-C): what was made is removed, and labUp rejects. */
  signal?: AbortSignal;
}

export interface LabHost {
  /** `host1` ... : what `vxnet --host NAME` takes. */
  name: string;
  /** Its network namespace. */
  ns: string;
  /** The daemon's --host-id (names of the namespaces it makes: vxsb-<id>-, vxct-<id>-). */
  hostId: string;
  /** Underlay address (--cluster-advertise). */
  ip: string;
  socket: string;
  stateDir: string;
  log: string;
  pid?: number;
  pidStart?: number;
}

export interface LabState {
  version: 1;
  dir: string;
  prefix: string;
  subnet: string;
  created: string;
  /** 'building' until every daemon answers. */
  status: 'building' | 'up';
  underlay: { ns: string; bridge: string };
  etcd: {
    ns: string;
    ip: string;
    clusterStore: string;
    dataDir: string;
    log: string;
    pid?: number;
    pidStart?: number;
  };
  hosts: LabHost[];
}

export interface Lab {
  state: LabState;
  /** A client of host `name` (host1, ...). */
  client(name: string): Client;
  down(): Promise<LabDownReport>;
}

export interface LabDownReport {
  found: boolean;
  namespaces: string[];
  processes: number[];
}

/** The lab's directory: given, else $VXNET_LAB_DIR (tests), else /run/vxnet/lab. */
export function labDir(dir?: string): string {
  return dir ?? process.env.VXNET_LAB_DIR ?? DEFAULT_LAB_DIR;
}

/** The prefix of the lab's namespace names: given, else $VXNET_LAB_PREFIX (tests), else none. */
export function labPrefix(prefix?: string): string {
  return prefix ?? process.env.VXNET_LAB_PREFIX ?? '';
}

/** The lab's state, or undefined when no lab is recorded in `dir`. */
export function readLabState(dir?: string): LabState | undefined {
  const file = join(labDir(dir), STATE_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as LabState;
  } catch {
    throw new VxError('ERR_LAB_STATE', `lab state ${file} is not JSON; remove it by hand`);
  }
}

function writeState(s: LabState): void {
  const file = join(s.dir, STATE_FILE);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/** The plan: every name, address and path of the lab, before anything exists. */
export function planLab(o: LabOptions = {}): LabState {
  const n = o.hosts ?? 2;
  if (!Number.isInteger(n) || n < 1 || n > MAX_LAB_HOSTS)
    throw new VxError(
      'ERR_BAD_OPTION',
      `--hosts must be an integer from 1 to ${MAX_LAB_HOSTS}, got ${String(o.hosts)}`,
    );
  const prefix = labPrefix(o.prefix);
  if (!/^[a-z0-9]{0,8}$/.test(prefix))
    throw new VxError('ERR_BAD_OPTION', `lab prefix "${prefix}" must be 0-8 of [a-z0-9]`);
  const subnet = o.subnet ?? DEFAULT_LAB_SUBNET;
  const c = parseCidr(subnet, '--subnet');
  if (c.prefix < 8 || c.prefix > 27)
    throw new VxError('ERR_BAD_CIDR', `--subnet ${subnet} must be an IPv4 subnet from /8 to /27`);
  const at = (i: number) => formatIp(c.network + i);
  const dir = labDir(o.dir);
  const ns = (name: string) => (prefix === '' ? name : `${prefix}-${name}`);
  const hosts: LabHost[] = [];
  for (let i = 1; i <= n; i++) {
    const name = `host${i}`;
    hosts.push({
      name,
      ns: ns(name),
      hostId: `${prefix}${name}`,
      ip: at(10 + i),
      socket: join(dir, `${name}.sock`),
      stateDir: join(dir, name),
      log: join(dir, `${name}.log`),
    });
  }
  const etcdIp = at(2);
  return {
    version: 1,
    dir,
    prefix,
    subnet: formatCidr(c),
    created: new Date().toISOString(),
    status: 'building',
    underlay: { ns: ns('vxlab-ul'), bridge: 'br0' },
    etcd: {
      ns: ns('vxlab-etcd'),
      ip: etcdIp,
      clusterStore: `etcd://${etcdIp}:${ETCD_CLIENT_PORT}`,
      dataDir: join(dir, 'etcd'),
      log: join(dir, 'etcd.log'),
    },
    hosts,
  };
}

/** Builds the lab; on failure removes what it made and rethrows. ERR_LAB_EXISTS when one is recorded. */
export async function labUp(o: LabOptions = {}): Promise<Lab> {
  const s = planLab(o);
  const say = o.progress ?? (() => undefined);
  if (!existsSync(ETCD_BIN))
    throw new VxError(
      'ERR_ETCD_START',
      `the lab needs etcd (${ETCD_BIN}): run scripts/setup.sh, or apt-get install etcd-server`,
    );
  mkdirSync(s.dir, { recursive: true, mode: 0o700 });
  if (readLabState(s.dir))
    throw new VxError(
      'ERR_LAB_EXISTS',
      `a lab is already up (state in ${join(s.dir, STATE_FILE)}); run 'vxnet lab down' first`,
    );
  const existing = await listNetns();
  for (const name of [s.underlay.ns, s.etcd.ns, ...s.hosts.map((h) => h.ns)])
    if (existing.includes(name))
      throw new VxError('ERR_LAB_EXISTS', `namespace "${name}" already exists (a lab made elsewhere?)`);
  // Created exclusively: of two `lab up` at once, one gets ERR_LAB_EXISTS here.
  try {
    writeFileSync(join(s.dir, STATE_FILE), `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST')
      throw new VxError('ERR_LAB_EXISTS', `a lab is already up (state in ${join(s.dir, STATE_FILE)})`);
    throw e;
  }
  const step = () => {
    if (o.signal?.aborted) throw new VxError('ERR_INTERRUPTED', 'lab up was interrupted');
  };
  try {
    step();
    await buildUnderlay(s, say);
    step();
    say(`starting etcd in namespace ${s.etcd.ns} at ${s.etcd.ip}:${ETCD_CLIENT_PORT}`);
    mkdirSync(s.etcd.dataDir, { recursive: true, mode: 0o700 });
    const etcd = await startEtcd({
      netns: s.etcd.ns,
      clientUrl: `http://${s.etcd.ip}:${ETCD_CLIENT_PORT}`,
      peerUrl: `http://${s.etcd.ip}:${ETCD_PEER_PORT}`,
      dataDir: s.etcd.dataDir,
      name: 'vxlab',
      detached: { logFile: s.etcd.log },
    });
    s.etcd.pid = etcd.pid;
    s.etcd.pidStart = startTime(etcd.pid);
    writeState(s);
    step();
    say(`starting ${s.hosts.length} vxnet daemons (${s.hosts.map((h) => `${h.name} ${h.ip}`).join(', ')})`);
    await Promise.all(s.hosts.map((h) => startHostDaemon(s, h, o.daemonArgs ?? [])));
    step();
    s.status = 'up';
    writeState(s);
  } catch (e) {
    say('lab up failed; removing what was made');
    await labDown({ dir: s.dir });
    throw e;
  }
  return labHandle(s);
}

function labHandle(s: LabState): Lab {
  return {
    state: s,
    client(name) {
      const h = s.hosts.find((x) => x.name === name);
      if (!h) throw new VxError('ERR_BAD_HOST', `the lab has no host "${name}"`);
      return new Client(h.socket);
    },
    down: () => labDown({ dir: s.dir }),
  };
}

/** The running lab recorded in `dir`, or undefined. */
export function openLab(dir?: string): Lab | undefined {
  const s = readLabState(dir);
  return s && labHandle(s);
}

/**
 * Starts host `name`'s daemon again after it died (a test's kill -9), with `daemonArgs` (what
 * labUp had). Refused while its recorded daemon still runs.
 */
export async function restartLabDaemon(lab: Lab, name: string, daemonArgs: string[] = []): Promise<void> {
  const h = lab.state.hosts.find((x) => x.name === name);
  if (!h) throw new VxError('ERR_BAD_HOST', `the lab has no host "${name}"`);
  if (h.pid !== undefined && h.pidStart !== undefined && startTime(h.pid) === h.pidStart)
    throw new VxError('ERR_DAEMON_RUNNING', `the daemon of ${name} (pid ${h.pid}) is running`);
  await startHostDaemon(lab.state, h, daemonArgs);
}

async function buildUnderlay(s: LabState, say: (l: string) => void): Promise<void> {
  const bits = s.subnet.split('/')[1]!;
  say(`building the underlay: bridge ${s.underlay.bridge} in namespace ${s.underlay.ns}, ${s.subnet}`);
  await ensureNetns(s.underlay.ns);
  await ensureBridge(s.underlay.bridge, { netns: s.underlay.ns });
  await setLink(s.underlay.bridge, { netns: s.underlay.ns, up: true });
  const members = [
    { ns: s.etcd.ns, ip: s.etcd.ip, port: 'pe' },
    ...s.hosts.map((h, i) => ({ ns: h.ns, ip: h.ip, port: `p${i + 1}` })),
  ];
  for (const m of members) {
    await ensureNetns(m.ns);
    await ensureVeth({ name: 'eth0', peer: m.port, netns: m.ns, peerNetns: s.underlay.ns });
    await attachPort(s.underlay.bridge, m.port, { netns: s.underlay.ns });
    await setLink(m.port, { netns: s.underlay.ns, up: true });
    await setLink('eth0', { netns: m.ns, up: true });
    await addAddr('eth0', `${m.ip}/${bits}`, { netns: m.ns });
  }
}

/** The `node ...` arguments that run the vxnet CLI this process runs (sources under tsx, or dist). */
export function cliEntry(): { args: string[]; cwd: string } {
  const root = packageRoot();
  if (import.meta.url.endsWith('.ts'))
    return { args: ['--import', 'tsx', join(root, 'src/cli/main.ts')], cwd: root };
  return { args: [join(root, 'dist/src/cli/main.js')], cwd: root };
}

async function startHostDaemon(s: LabState, h: LabHost, extra: string[]): Promise<void> {
  mkdirSync(h.stateDir, { recursive: true, mode: 0o700 });
  const entry = cliEntry();
  const out = openSync(h.log, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(
      'nsenter',
      [
        `--net=/run/netns/${h.ns}`,
        '--',
        process.execPath,
        // As bin/vxnet.js runs it (why: there): 1 MB semi-spaces, old space grown 10% past the
        // live heap, 2 malloc arenas (env below).
        '--max-semi-space-size=1',
        '--heap-growing-percent=10',
        ...entry.args,
        'daemon',
        '--state-dir',
        h.stateDir,
        '--socket',
        h.socket,
        '--host-id',
        h.hostId,
        '--cluster-store',
        s.etcd.clusterStore,
        '--cluster-advertise',
        h.ip,
        ...extra,
      ],
      {
        cwd: entry.cwd,
        detached: true,
        stdio: ['ignore', out, out],
        env: { ...process.env, VXNET_HOST: undefined, MALLOC_ARENA_MAX: '2' },
      },
    );
  } finally {
    closeSync(out);
  }
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  child.once('error', () => undefined);
  child.unref();
  h.pid = child.pid;
  h.pidStart = child.pid === undefined ? undefined : startTime(child.pid);
  writeState(s);
  const client = new Client(h.socket);
  const deadline = Date.now() + 30000;
  let dead: number | string | undefined;
  void exited.then((c) => {
    dead = c;
  });
  while (Date.now() < deadline) {
    if (dead !== undefined) break;
    const ok = await client.raw('GET', '/_ping').then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  const tailText = (() => {
    try {
      return readFileSync(h.log, 'utf8').slice(-2000);
    } catch {
      return '';
    }
  })();
  throw new VxError(
    'ERR_LAB_DAEMON',
    `the daemon of ${h.name} ${dead === undefined ? 'did not answer within 30 s' : `exited (${dead})`}; its log ${h.log}:\n${tailText}`,
  );
}

/** Kills `pid` if it is still the process started at `start`: SIGTERM, then SIGKILL after `graceMs`. */
async function stopProcess(
  pid: number | undefined,
  start: number | undefined,
  graceMs: number,
): Promise<boolean> {
  if (pid === undefined || start === undefined || startTime(pid) !== start) return false;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return false;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && startTime(pid) === start) await new Promise((r) => setTimeout(r, 50));
  if (startTime(pid) === start) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
    while (startTime(pid) === start) await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/**
 * Removes the lab recorded in `dir`: daemons (SIGTERM, then SIGKILL), the namespaces they made
 * (and what runs inside), the lab's namespaces, etcd, the files. Can run twice, and after a
 * crash of `labUp` at any point.
 */
export async function labDown(
  o: { dir?: string; progress?: (line: string) => void } = {},
): Promise<LabDownReport> {
  const dir = labDir(o.dir);
  const s = readLabState(dir);
  const report: LabDownReport = { found: s !== undefined, namespaces: [], processes: [] };
  if (!s) return report;
  const say = o.progress ?? (() => undefined);
  say(`stopping ${s.hosts.length} daemons and etcd`);
  const stopped = await Promise.all(s.hosts.map((h) => stopProcess(h.pid, h.pidStart, 3000)));
  s.hosts.forEach((h, i) => {
    if (stopped[i] && h.pid !== undefined) report.processes.push(h.pid);
  });
  const all = [...(await listNetns()), ...(await listNetns({ stale: true }))];
  const theirs = all.filter((n) =>
    s.hosts.some((h) => n.startsWith(`vxsb-${h.hostId}-`) || n.startsWith(`vxct-${h.hostId}-`)),
  );
  const ours = [...s.hosts.map((h) => h.ns), s.etcd.ns, s.underlay.ns].filter((n) => all.includes(n));
  say(`removing ${theirs.length + ours.length} namespaces`);
  const remove = async (n: string) => {
    await deleteNetns(n, { killProcesses: true });
    // The embedded resolver's resolv.conf of a container whose daemon was killed first.
    rmSync(`/etc/netns/${n}/resolv.conf`, { force: true });
    try {
      rmdirSync(`/etc/netns/${n}`);
    } catch {
      // Not there, or someone else's files.
    }
    report.namespaces.push(n);
  };
  // The daemons' namespaces (a lab may hold a thousand containers) a few at a time, then the lab's.
  const queue = [...theirs];
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let n = queue.shift(); n !== undefined; n = queue.shift()) await remove(n);
    }),
  );
  for (const n of ours) await remove(n);
  if (await stopProcess(s.etcd.pid, s.etcd.pidStart, 0)) report.processes.push(s.etcd.pid!);
  for (const h of s.hosts) {
    rmSync(h.stateDir, { recursive: true, force: true });
    rmSync(h.socket, { force: true });
    rmSync(h.log, { force: true });
  }
  rmSync(s.etcd.dataDir, { recursive: true, force: true });
  rmSync(s.etcd.log, { force: true });
  rmSync(join(dir, STATE_FILE), { force: true });
  rmSync(join(dir, `${STATE_FILE}.tmp`), { force: true });
  try {
    rmdirSync(dir);
  } catch {
    // Not empty (someone else's files) or gone.
  }
  return report;
}

export interface LabHostStatus extends LabHost {
  daemon: 'up' | 'down';
  /** Containers of the host's daemon, when it answers. */
  containers?: number;
}

export interface LabStatus {
  found: boolean;
  state?: LabState;
  etcd?: 'up' | 'down';
  hosts: LabHostStatus[];
}

/** What runs: each daemon asked for its info, etcd's process checked. */
export async function labStatus(dir?: string): Promise<LabStatus> {
  const s = readLabState(dir);
  if (!s) return { found: false, hosts: [] };
  const hosts = await Promise.all(
    s.hosts.map(async (h): Promise<LabHostStatus> => {
      const info = existsSync(h.socket)
        ? await new Client(h.socket).call<{ Containers: number }>('GET', '/info').catch(() => undefined)
        : undefined;
      return { ...h, daemon: info ? 'up' : 'down', containers: info?.Containers };
    }),
  );
  const etcdUp = s.etcd.pid !== undefined && startTime(s.etcd.pid) === s.etcd.pidStart;
  return { found: true, state: s, etcd: etcdUp ? 'up' : 'down', hosts };
}
