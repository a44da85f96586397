// A small helper process that runs the kernel tools (ip, bridge, nft) for a big one.
//
// Owns: one long-lived child (`node -e HELPER`: no modules, a few MB of heap) that execFile()s the
// commands it is sent over a pipe (JSON lines: argv, stdin data, timeout -> stdout, stderr,
// error) and answers them, many in flight at once.
// Why: spawn() forks the calling process and blocks its thread until the child has exec'd. The
// cost grows with the caller's memory: a daemon of ~150 MB blocks ~50-80 ms per command on the
// shared 2-core machine (a bare node process: ~2 ms), and a `run` on a cluster takes several
// commands here and on every other host. Forking from the helper keeps the daemon's event loop
// free. If the helper dies, its pending commands fail with its exit and the next command starts
// a new one; `exec.ts` falls back to forking directly when no helper was started.
// A command for a named network namespace (`netns`) is forked from inside it: the helper enters
// it with setns(2) (koffi), forks, and returns to its own, all in one synchronous step (libuv
// forks in the calling thread). `ip -n NS` would instead unshare a mount namespace and remount
// /sys in every command: a copy of the whole mount table, which grows by one mount per namespace
// on the host (a thousand containers: most of an `ip` command's cost). Without koffi, or when
// setns is refused, the helper runs `ip -n NS ...` (the command must be `ip` or `bridge`).

import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';

const HELPER = `
const { execFile, spawn } = require('node:child_process');
const fs = require('node:fs');
const out = (m) => process.stdout.write(JSON.stringify(m) + '\\n');
let setns;
let home;
try {
  setns = require(process.argv[1]).load('libc.so.6').func('int setns(int fd, int nstype)');
  home = fs.openSync('/proc/self/ns/net', 'r');
} catch {
  setns = undefined;
}
const CLONE_NEWNET = 0x40000000;
const exec = (q, argv) => execFile(argv[0], argv.slice(1), { timeout: q.timeoutMs, maxBuffer: 64 << 20 }, (e, so, se) =>
  out({ id: q.id, error: e ? e.message : null, stdout: so, stderr: se }),
);
function inNetns(q) {
  let fd;
  try {
    fd = fs.openSync('/run/netns/' + q.netns, 'r');
  } catch (e) {
    const why = e.code === 'ENOENT' ? 'No such file or directory' : e.message;
    out({ id: q.id, error: 'Command failed', stdout: '', stderr: 'Cannot open network namespace "' + q.netns + '": ' + why + '\\n' });
    return undefined;
  }
  try {
    if (setns(fd, CLONE_NEWNET) !== 0) return exec(q, [q.argv[0], '-n', q.netns, ...q.argv.slice(1)]);
    try {
      return exec(q, q.argv);
    } finally {
      if (setns(home, CLONE_NEWNET) !== 0) process.exit(70);
    }
  } finally {
    fs.closeSync(fd);
  }
}
// A long-running process (a container's): its own process group, output to a file, no pipe to
// anything here, so it outlives this helper; its pid now, its exit code when it ends.
function detached(q) {
  let fd;
  try {
    fd = fs.openSync(q.logFile, 'a', 0o600);
    const c = spawn(q.argv[0], q.argv.slice(1), { detached: true, stdio: ['ignore', fd, fd] });
    c.once('spawn', () => out({ id: q.id, pid: c.pid }));
    c.once('error', (e) => out({ id: q.id, error: e.message, stdout: '', stderr: '' }));
    c.once('exit', (code, signal) => out({ id: q.id, exit: code === null ? 128 + (SIGNALS[signal] || 0) : code }));
  } catch (e) {
    out({ id: q.id, error: e.message, stdout: '', stderr: '' });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
const SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const q = JSON.parse(buf.slice(0, i));
    buf = buf.slice(i + 1);
    if (q.detached) {
      detached(q);
      continue;
    }
    const c =
      q.netns === undefined
        ? exec(q, q.argv)
        : setns
          ? inNetns(q)
          : exec(q, [q.argv[0], '-n', q.netns, ...q.argv.slice(1)]);
    if (!c) continue;
    c.on('error', () => undefined);
    if (q.input !== undefined) c.stdin.end(q.input);
  }
});
process.stdin.on('end', () => process.exit(0));
`;

interface Answer {
  id: number;
  error: string | null;
  stdout: string;
  stderr: string;
  /** A detached process started (its pid), or ended (its exit code, 128 + signal when killed). */
  pid?: number;
  exit?: number;
}

/** What spawnDetached's caller hears: the pid once started, the exit code when it ends. */
export interface DetachedWatch {
  started(err: Error | null, pid: number): void;
  /** The exit code, or undefined when the helper died first (the exit can no longer be seen). */
  exited(code: number | undefined): void;
}

type Done = (err: Error | null, stdout: string, stderr: string) => void;

export class Spawner {
  private child?: ChildProcess;
  private next = 1;
  private readonly pending = new Map<number, Done>();
  /** Detached processes started through the helper whose exit has not been reported yet. */
  private readonly running = new Map<number, DetachedWatch>();
  private readonly starting = new Map<number, DetachedWatch>();
  private closed = false;

  /**
   * Runs argv like execFile; `done` gets an Error (its message) on a failure or non-zero exit.
   * `netns`: run it inside that named namespace (argv must be `ip ...` or `bridge ...`).
   */
  run(argv: string[], o: { input?: string; timeoutMs: number; netns?: string }, done: Done): void {
    const child = this.ensure();
    const id = this.next++;
    // Referenced while commands are in flight, so a process waiting on one does not exit.
    if (this.pending.size === 0) this.ref(child, true);
    this.pending.set(id, (err, stdout, stderr) => {
      if (this.pending.size === 0 && this.starting.size === 0 && this.child === child) this.ref(child, false);
      done(err, stdout, stderr);
    });
    const q = { id, argv, input: o.input, timeoutMs: o.timeoutMs, netns: o.netns };
    child.stdin!.write(`${JSON.stringify(q)}\n`);
  }

  /**
   * Starts a long-running command from the helper (not forking the caller): detached, in its own
   * process group, stdout and stderr appended to `logFile`. It outlives the helper and the caller.
   */
  spawnDetached(argv: string[], o: { logFile: string }, watch: DetachedWatch): void {
    const child = this.ensure();
    const id = this.next++;
    if (this.pending.size === 0 && this.starting.size === 0) this.ref(child, true);
    this.starting.set(id, watch);
    child.stdin!.write(`${JSON.stringify({ id, argv, detached: true, logFile: o.logFile })}\n`);
  }

  close(): void {
    this.closed = true;
    this.child?.stdin?.end();
    this.child = undefined;
  }

  private detachedAnswer(child: ChildProcess, a: Answer, w: DetachedWatch): void {
    if (this.starting.delete(a.id)) {
      if (a.pid !== undefined) this.running.set(a.id, w);
      if (this.pending.size === 0 && this.starting.size === 0 && this.child === child) this.ref(child, false);
      w.started(a.pid === undefined ? new Error(a.error ?? 'not started') : null, a.pid ?? 0);
      if (a.exit === undefined) return;
    }
    if (a.exit !== undefined && this.running.delete(a.id)) w.exited(a.exit);
  }

  private ref(child: ChildProcess, on: boolean): void {
    for (const h of [child, child.stdin, child.stdout] as unknown as { ref?(): void; unref?(): void }[])
      if (on) h?.ref?.();
      else h?.unref?.();
  }

  private ensure(): ChildProcess {
    if (this.child) return this.child;
    if (this.closed) throw new Error('the spawn helper is closed');
    let koffi = '';
    try {
      koffi = createRequire(import.meta.url).resolve('koffi');
    } catch {
      // No koffi: commands for a namespace use `ip -n`.
    }
    const child = spawn(process.execPath, ['-e', HELPER, koffi], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.ref(child, false);
    let buf = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      buf += d;
      let i = buf.indexOf('\n');
      while (i >= 0) {
        const a = JSON.parse(buf.slice(0, i)) as Answer;
        buf = buf.slice(i + 1);
        i = buf.indexOf('\n');
        const w = this.starting.get(a.id) ?? this.running.get(a.id);
        if (w) {
          this.detachedAnswer(child, a, w);
          continue;
        }
        const done = this.pending.get(a.id);
        this.pending.delete(a.id);
        done?.(a.error === null ? null : new Error(a.error), a.stdout, a.stderr);
      }
    });
    child.stdin!.on('error', () => undefined);
    child.once('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      const err = new Error(`the spawn helper exited (${code ?? signal})`);
      for (const [id, done] of this.pending) {
        this.pending.delete(id);
        done(err, '', '');
      }
      for (const [id, w] of this.starting) {
        this.starting.delete(id);
        w.started(err, 0);
      }
      for (const [id, w] of this.running) {
        this.running.delete(id);
        w.exited(undefined);
      }
    });
    this.child = child;
    return child;
  }
}
