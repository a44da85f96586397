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

import { type ChildProcess, spawn } from 'node:child_process';

const HELPER = `
const { execFile } = require('node:child_process');
const out = (m) => process.stdout.write(JSON.stringify(m) + '\\n');
let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const q = JSON.parse(buf.slice(0, i));
    buf = buf.slice(i + 1);
    const c = execFile(q.argv[0], q.argv.slice(1), { timeout: q.timeoutMs, maxBuffer: 64 << 20 }, (e, so, se) =>
      out({ id: q.id, error: e ? e.message : null, stdout: so, stderr: se }),
    );
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
}

type Done = (err: Error | null, stdout: string, stderr: string) => void;

export class Spawner {
  private child?: ChildProcess;
  private next = 1;
  private readonly pending = new Map<number, Done>();
  private closed = false;

  /** Runs argv like execFile; `done` gets an Error (its message) on a failure or non-zero exit. */
  run(argv: string[], o: { input?: string; timeoutMs: number }, done: Done): void {
    const child = this.ensure();
    const id = this.next++;
    // Referenced while commands are in flight, so a process waiting on one does not exit.
    if (this.pending.size === 0) this.ref(child, true);
    this.pending.set(id, (err, stdout, stderr) => {
      if (this.pending.size === 0 && this.child === child) this.ref(child, false);
      done(err, stdout, stderr);
    });
    child.stdin!.write(`${JSON.stringify({ id, argv, input: o.input, timeoutMs: o.timeoutMs })}\n`);
  }

  close(): void {
    this.closed = true;
    this.child?.stdin?.end();
    this.child = undefined;
  }

  private ref(child: ChildProcess, on: boolean): void {
    for (const h of [child, child.stdin, child.stdout] as unknown as { ref?(): void; unref?(): void }[])
      if (on) h?.ref?.();
      else h?.unref?.();
  }

  private ensure(): ChildProcess {
    if (this.child) return this.child;
    if (this.closed) throw new Error('the spawn helper is closed');
    const child = spawn(process.execPath, ['-e', HELPER], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.ref(child, false);
    let buf = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      buf += d;
      let i = buf.indexOf('\n');
      while (i >= 0) {
        const a = JSON.parse(buf.slice(0, i)) as Answer;
        buf = buf.slice(i + 1);
        const done = this.pending.get(a.id);
        this.pending.delete(a.id);
        done?.(a.error === null ? null : new Error(a.error), a.stdout, a.stderr);
        i = buf.indexOf('\n');
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
    });
    this.child = child;
    return child;
  }
}
