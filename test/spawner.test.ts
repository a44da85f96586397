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
