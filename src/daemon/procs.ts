// Container processes: starting a command inside a container's namespace and knowing whether it
// still runs, also after the daemon itself was restarted.
//
// Owns: spawn (ip netns exec NS CMD, detached, output to a log file in the state dir; forked by
// the spawn helper when the daemon runs one) and liveness. `ip netns exec` rather than `nsenter --net`: it also mounts /etc/netns/NS/resolv.conf
// (the embedded DNS resolver's, names.ts) over /etc/resolv.conf for the container's processes.
// A container's process must outlive a daemon crash (the daemon is the
// control plane, not the parent that keeps containers alive), so it runs in its own process
// group with no pipe to the daemon. Liveness is checked by pid *and* start time (a reused pid is
// another process) *and* network namespace (a process in another namespace is not ours).

import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { VxError } from '../errors.js';
import { spawnHelper } from '../kernel/exec.js';

export interface Spawned {
  pid: number;
  start: number;
  /**
   * Resolves with the exit code (128 + signal number when killed) while this daemon (or its spawn
   * helper) is the parent; undefined when that parent went away first: poll it (isAlive) instead.
   */
  exited: Promise<number | undefined>;
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

export async function spawnInContainer(o: {
  netns: string;
  cmd: string[];
  logFile: string;
}): Promise<Spawned> {
  const argv = ['ip', 'netns', 'exec', o.netns, ...o.cmd];
  const helper = spawnHelper();
  if (helper) {
    // Forked by the helper: forking the daemon itself blocks it for tens of ms (spawner.ts).
    let exited!: (code: number | undefined) => void;
    const exit = new Promise<number | undefined>((resolve) => {
      exited = resolve;
    });
    const pid = await new Promise<number>((resolve, reject) =>
      helper.spawnDetached(
        argv,
        { logFile: o.logFile },
        {
          started: (err, pid) =>
            err
              ? reject(
                  new VxError('ERR_SPAWN', `could not start ${o.cmd[0]} in "${o.netns}": ${err.message}`),
                )
              : resolve(pid),
          exited,
        },
      ),
    );
    return { pid, start: startTime(pid) ?? 0, exited: exit };
  }
  const out = openSync(o.logFile, 'a', 0o600);
  try {
    const child = spawn(argv[0]!, argv.slice(1), {
      detached: true,
      stdio: ['ignore', out, out],
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (e) =>
        reject(new VxError('ERR_SPAWN', `could not start ${o.cmd[0]} in "${o.netns}": ${e.message}`)),
      );
    });
    const exited = new Promise<number>((resolve) =>
      child.once('exit', (code, signal) => resolve(code ?? 128 + (SIGNALS[signal ?? ''] ?? 0))),
    );
    child.unref();
    const pid = child.pid!;
    return { pid, start: startTime(pid) ?? 0, exited };
  } finally {
    closeSync(out);
  }
}

/** Field 22 of /proc/PID/stat (start time in clock ticks); undefined when there is no such process. */
export function startTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); a zombie has exited.
    if (fields[0] === 'Z') return undefined;
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

/** True when `pid` is still the process started at `start`, inside namespace `netns`. */
export function isAlive(pid: number, start: number, netns: string): boolean {
  if (startTime(pid) !== start) return false;
  try {
    return statSync(`/proc/${pid}/ns/net`).ino === statSync(`/run/netns/${netns}`).ino;
  } catch {
    return false;
  }
}

export function killProcess(pid: number, start: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (startTime(pid) !== start) return;
  try {
    process.kill(pid, signal);
  } catch {
    // Gone meanwhile.
  }
}
