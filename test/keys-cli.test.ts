// `vxnet keys ls|rotate` against a daemon on a simulated host: the daemon creates the cluster key
// ring on start, keeps a 0600 copy in its state dir, rotates on demand through the API, and never
// prints a secret (CLI output, daemon log).
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createHost, root, type TestHost } from './daemon-host.js';

const skip = root ? false : 'needs root (network namespaces)';
let h: TestHost;

before(async () => {
  if (!root) return;
  h = await createHost();
  await h.start();
});

after(async () => {
  if (h) await h.destroy();
});

test('vxnet keys: ring made on start (file 0600), rotate on demand, 3 kept, secrets never printed', {
  skip,
}, async () => {
  const ls = await h.cli(['keys', 'ls', '--format', 'json']);
  assert.equal(ls.code, 0, ls.stderr);
  const s0 = JSON.parse(ls.stdout);
  assert.equal(s0.primary, 1);
  assert.deepEqual(s0.pending, null);
  const file = join(h.stateDir, 'keys.json');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  for (let i = 2; i <= 4; i++) {
    const r = await h.cli(['keys', 'rotate', '--timeout', '20']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^key ${i} is now the primary key`));
  }
  const s = JSON.parse((await h.cli(['keys', 'ls', '--format', 'json'])).stdout);
  assert.equal(s.primary, 4);
  assert.deepEqual(
    s.keys.map((k: { id: number }) => k.id),
    [2, 3, 4],
  );
  const table = await h.cli(['keys', 'ls']);
  assert.match(table.stdout, /^4 .* primary$/m);
  const secrets: string[] = JSON.parse(readFileSync(file, 'utf8')).keys.map(
    (k: { secret: string }) => k.secret,
  );
  assert.equal(secrets.length, 3);
  const printed = h.output.join('') + ls.stdout + table.stdout + JSON.stringify(s);
  for (const x of secrets) assert.ok(!printed.includes(x), 'a secret was printed or logged');
  const bad = await h.cli(['keys', 'rotate', '--timeout', 'soon']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /ERR_BAD_OPTION: --timeout "soon"/);
});
