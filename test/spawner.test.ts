// The spawn helper (src/kernel/spawner.ts) and exec.ts through it: output, stdin, failures with
// their stderr (so KernelError codes still work), many commands in flight, a dead helper.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KernelError, run, useSpawnHelper } from '../src/kernel/exec.js';
import { Spawner } from '../src/kernel/spawner.js';

const call = (s: Spawner, argv: string[], input?: string) =>
  new Promise<{ err: Error | null; stdout: string; stderr: string }>((resolve) =>
    s.run(argv, { input, timeoutMs: 5000 }, (err, stdout, stderr) => resolve({ err, stdout, stderr })),
  );

test('spawner: runs commands in a helper process, with stdin, failures and concurrency', async (t) => {
  const s = new Spawner();
  t.after(() => s.close());
  assert.deepEqual(await call(s, ['echo', 'a b']), { err: null, stdout: 'a b\n', stderr: '' });
  assert.equal((await call(s, ['cat'], 'x\ny\n')).stdout, 'x\ny\n');
  const bad = await call(s, ['sh', '-c', 'echo oops >&2; exit 3']);
  assert.ok(bad.err, 'a non-zero exit is an error');
  assert.equal(bad.stderr, 'oops\n');
  assert.ok((await call(s, ['/nonexistent/tool'])).err, 'a missing binary is an error');
  // Many in flight: every answer goes to its own caller.
  const many = await Promise.all(Array.from({ length: 50 }, (_, i) => call(s, ['echo', String(i)])));
  assert.deepEqual(
    many.map((r) => r.stdout),
    Array.from({ length: 50 }, (_, i) => `${i}\n`),
  );
  // The helper is another process: the commands' parent is not this one.
  const ppid = Number((await call(s, ['sh', '-c', 'echo $PPID'])).stdout);
  assert.notEqual(ppid, process.pid);
  // A helper that dies fails what it had in flight; the next command starts a new one.
  const pending = call(s, ['sleep', '5']);
  process.kill(ppid, 'SIGKILL');
  const died = await pending;
  assert.match(died.err?.message ?? '', /spawn helper exited/);
  assert.equal((await call(s, ['echo', 'again'])).stdout, 'again\n');
});

test('exec through the helper: output and KernelError with its stderr, as when forking directly', async (t) => {
  const stop = useSpawnHelper();
  t.after(stop);
  assert.equal(await run('echo', ['hi'], { action: 'echo' }), 'hi\n');
  await assert.rejects(
    run('sh', ['-c', 'echo "Cannot find device x" >&2; exit 1'], { action: 'find x' }),
    (e: unknown) =>
      e instanceof KernelError &&
      e.code === 'ERR_LINK_NOT_FOUND' &&
      /could not find x: Cannot find device x/.test(e.message),
  );
});

test('ip through the helper in a named namespace: forked inside it (setns), the helper stays home', {
  skip: process.getuid?.() === 0 ? false : 'needs root (network namespaces)',
}, async (t) => {
  const { ip } = await import('../src/kernel/exec.js');
  const { deleteNetns, ensureNetns } = await import('../src/kernel/netns.js');
  const ns = `vxsp-${process.pid}`;
  await ensureNetns(ns);
  t.after(() => deleteNetns(ns));
  const stop = useSpawnHelper();
  t.after(stop);
  await ip(['link', 'add', 'spx0', 'type', 'veth', 'peer', 'name', 'spx1'], {
    netns: ns,
    action: 'add spx0',
  });
  // Many at once, inside and outside, each sees its own namespace.
  const inside = ip(['-j', 'link', 'show'], { netns: ns, action: 'list' });
  const outside = ip(['-j', 'link', 'show'], { action: 'list' });
  const names = (out: string) => (JSON.parse(out) as { ifname: string }[]).map((l) => l.ifname).sort();
  assert.deepEqual(names(await inside), ['lo', 'spx0', 'spx1']);
  assert.ok(!names(await outside).includes('spx0'), 'the helper went back to its own namespace');
  // The helper itself is back in its own namespace.
  const ppid = Number(await run('sh', ['-c', 'echo $PPID'], { action: 'ppid' }));
  const helperNs = (await import('node:fs')).readlinkSync(`/proc/${ppid}/ns/net`);
  assert.equal(helperNs, (await import('node:fs')).readlinkSync('/proc/self/ns/net'));
  await assert.rejects(
    ip(['link', 'show'], { netns: `${ns}-gone`, action: 'list' }),
    (e: unknown) => e instanceof KernelError && e.code === 'ERR_NETNS_NOT_FOUND',
  );
});

test('spawner: detached processes started by the helper report pid and exit, and outlive it', async (t) => {
  const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'vxsp-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const s = new Spawner();
  t.after(() => s.close());
  // A running detached process does not hold the event loop (a daemon's server does): the test does.
  const keep = setInterval(() => undefined, 1000);
  t.after(() => clearInterval(keep));
  const start = (argv: string[], logFile: string) => {
    let exited!: (c: number | undefined) => void;
    const exit = new Promise<number | undefined>((r) => {
      exited = r;
    });
    const pid = new Promise<number>((resolve, reject) =>
      s.spawnDetached(argv, { logFile }, { started: (e, p) => (e ? reject(e) : resolve(p)), exited }),
    );
    return { pid, exit };
  };
  const a = start(['sh', '-c', 'echo out; echo err >&2; exit 3'], join(dir, 'a.log'));
  assert.ok((await a.pid) > 0);
  assert.equal(await a.exit, 3);
  assert.equal(readFileSync(join(dir, 'a.log'), 'utf8'), 'out\nerr\n');
  await assert.rejects(start(['/nonexistent/tool'], join(dir, 'b.log')).pid);
  // The helper dies: the long-running process goes on, its exit is reported unknown.
  const c = start(['sleep', '30'], join(dir, 'c.log'));
  const pid = await c.pid;
  const helperPid = Number((await call(s, ['sh', '-c', 'echo $PPID'])).stdout);
  process.kill(helperPid, 'SIGKILL');
  assert.equal(await c.exit, undefined);
  assert.doesNotThrow(() => process.kill(pid, 0), 'it outlived the helper');
  process.kill(pid, 'SIGKILL');
});
