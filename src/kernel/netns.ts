// Named network namespaces (`ip netns`): what a container, a network's sandbox, or a simulated
// host is.
//
// Owns: create (idempotent: an existing namespace is adopted, a stale name file replaced), delete
// (can run twice; optionally kills what still runs inside, since a namespace lives on while a
// process holds it), list, exists, and running a command inside one.
// A daemon simulating a host should enter only the host's *network* namespace
// (`nsenter --net=/run/netns/host1 vxnet daemon`): under `ip netns exec` it gets a private mount
// namespace, so the namespaces it creates are mounted where only it and its children see them.

import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { checkNetnsName, ip, ipJson, isExists, isMissing, type RunOptions, run } from './exec.js';

const NETNS_DIR = '/run/netns';

export async function ensureNetns(name: string, options: { loopbackUp?: boolean } = {}): Promise<void> {
  checkNetnsName(name);
  if (netnsState(name) === 'stale') await deleteNetns(name);
  if (netnsState(name) === 'absent') {
    await ip(['netns', 'add', name], { action: `add netns "${name}"` }).catch((e) => {
      if (!isExists(e)) throw e;
    });
  }
  if (options.loopbackUp ?? true)
    await ip(['link', 'set', 'dev', 'lo', 'up'], { netns: name, action: 'set lo up' });
}

export async function deleteNetns(name: string, options: { killProcesses?: boolean } = {}): Promise<void> {
  checkNetnsName(name);
  if (options.killProcesses) await killNetnsProcesses(name);
  await ip(['netns', 'delete', name], { action: `delete netns "${name}"` }).catch((e) => {
    if (!isMissing(e)) throw e;
  });
}

/**
 * 'live': /run/netns/NAME is a namespace mounted there. 'stale': a plain file left behind, which
 * happens when the mount was made in another mount namespace that is gone (a process started by
 * `ip netns exec` runs in a private one): `ip netns add` refuses it, so ensureNetns replaces it.
 */
export function netnsState(name: string): 'live' | 'stale' | 'absent' {
  const path = `${NETNS_DIR}/${checkNetnsName(name)}`;
  if (!existsSync(path)) return 'absent';
  return statSync(path).dev === statSync(NETNS_DIR).dev ? 'stale' : 'live';
}

export function netnsExists(name: string): boolean {
  return netnsState(name) === 'live';
}

/** Names of the live namespaces; with `{ stale: true }`, of the stale files instead (to clean up). */
export async function listNetns(options: { stale?: boolean } = {}): Promise<string[]> {
  const rows = await ipJson<{ name: string }>(['netns', 'list'], { action: 'list netns' });
  const want = options.stale ? 'stale' : 'live';
  return rows
    .map((r) => r.name)
    .filter((n) => netnsState(n) === want)
    .sort();
}

/** Pids of the processes whose network namespace is `name`. */
export async function netnsPids(name: string): Promise<number[]> {
  checkNetnsName(name);
  if (!netnsExists(name)) return [];
  const out = await ip(['netns', 'pids', name], { action: `list pids of netns "${name}"` });
  return out.split(/\s+/).filter(Boolean).map(Number);
}

async function killNetnsProcesses(name: string): Promise<void> {
  for (const pid of await netnsPids(name)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

/** Runs a command inside a namespace and resolves its stdout; fails with ERR_KERNEL naming it. */
export function execInNetns(
  name: string,
  cmd: string,
  args: string[],
  options: Omit<RunOptions, 'netns' | 'action'> & { action?: string } = {},
): Promise<string> {
  const action = options.action ?? `run ${cmd}`;
  return run(cmd, args, { ...options, netns: name, action });
}

/** Starts a long-running command inside a namespace (a container's process). */
export function spawnInNetns(
  name: string,
  cmd: string,
  args: string[],
  options: SpawnOptions = {},
): ChildProcess {
  return spawn('ip', ['netns', 'exec', checkNetnsName(name), cmd, ...args], options);
}
