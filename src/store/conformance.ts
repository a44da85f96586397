// The Store contract as executable checks, run against every implementation.
//
// Owns: what "behaves like etcd v3" means for vxnet, in one place, so the memory and embedded
// stores (test/store.test.ts) and the etcd adapter (issue 6) are held to the same semantics.
// Every check works under its own key prefix and compares revisions relatively, so it can run
// against a shared etcd that already holds data. Each check throws (node:assert) on a violation.

import assert from 'node:assert/strict';
import { isVxError } from '../errors.js';
import type { Store, WatchMessage } from './store.js';

export type Check = (store: Store, prefix: string) => Promise<void>;

const code = (c: string) => (e: unknown) => isVxError(e) && e.code === c;
const tick = () => new Promise((r) => setTimeout(r, 20));

async function txnSemantics(s: Store, p: string): Promise<void> {
  const k = `${p}k`;
  const r1 = await s.txn({
    compare: [{ key: k, absent: true }],
    success: [{ type: 'put', key: k, value: '1' }],
  });
  assert.equal(r1.succeeded, true);
  const base = r1.revision;
  const r2 = await s.txn({
    compare: [{ key: k, absent: true }],
    success: [{ type: 'put', key: k, value: 'x' }],
    failure: [{ type: 'put', key: `${p}lost`, value: 'y' }],
  });
  assert.deepEqual(r2, { succeeded: false, revision: base + 1 }, 'the failure branch ran and wrote');
  await s.put(k, '2');
  const kv = { key: k, value: '2', createRevision: base, modRevision: base + 2, version: 2, lease: 0 };
  assert.deepEqual(await s.get(k), kv);
  const stale = await s.txn({
    compare: [{ key: k, modRevision: base }],
    success: [{ type: 'delete', key: k }],
  });
  assert.deepEqual(
    stale,
    { succeeded: false, revision: base + 2 },
    'a failed compare without failure ops writes nothing',
  );
  assert.equal(
    (await s.txn({ compare: [{ key: `${p}none`, modRevision: 0 }], success: [] })).succeeded,
    true,
  );
  assert.equal((await s.txn({ compare: [{ key: `${p}none`, value: '' }], success: [] })).succeeded, false);
  const del = await s.txn({ compare: [{ key: k, value: '2' }], success: [{ type: 'delete', key: k }] });
  assert.deepEqual(del, { succeeded: true, revision: base + 3 });
  assert.equal((await s.delete(k)).revision, base + 3, 'deleting nothing does not bump the revision');
  await s.put(`${p}d/1`, 'a');
  await s.put(`${p}d/2`, 'b');
  await s.put(`${p}e`, 'c');
  await s.txn({ compare: [], success: [{ type: 'deletePrefix', prefix: `${p}d/` }] });
  const left = await s.list(p);
  assert.deepEqual(
    left.kvs.map((x) => x.key),
    [`${p}e`, `${p}lost`],
  );
  assert.equal(left.revision, base + 7, 'one revision for a multi-key delete');
}

async function badInput(s: Store, p: string): Promise<void> {
  await s.put(`${p}a`, '1');
  const before = await s.list(p);
  const cases: [() => Promise<unknown>, string][] = [
    [() => s.put('', 'x'), 'ERR_STORE_BAD_KEY'],
    [() => s.put(`${p}k`, 5 as unknown as string), 'ERR_STORE_BAD_VALUE'],
    [() => s.txn({ compare: [{ key: `${p}a` } as never], success: [] }), 'ERR_STORE_BAD_TXN'],
    [() => s.txn({ compare: [], success: [{ type: 'nope' } as never] }), 'ERR_STORE_BAD_TXN'],
    [
      () =>
        s.txn({
          compare: [],
          success: [
            { type: 'put', key: `${p}x`, value: '1' },
            { type: 'delete', key: `${p}x` },
          ],
        }),
      'ERR_STORE_BAD_TXN',
    ],
    [() => s.put(`${p}k`, 'v', { lease: 987654321 }), 'ERR_LEASE_NOT_FOUND'],
    [() => s.grantLease({ ttlSeconds: 0 }), 'ERR_STORE_BAD_TTL'],
  ];
  for (const [fn, c] of cases) await assert.rejects(async () => fn(), code(c), c);
  assert.deepEqual(await s.list(p), before, 'bad input changed nothing');
}

async function watchEvents(s: Store, p: string): Promise<void> {
  const seen: WatchMessage[] = [];
  const w = await s.watch(`${p}net/`, (m) => seen.push(m));
  const r1 = await s.put(`${p}net/a`, '1');
  await s.put(`${p}other`, 'x');
  const r3 = await s.txn({
    compare: [],
    success: [
      { type: 'put', key: `${p}net/b`, value: '2' },
      { type: 'delete', key: `${p}net/a` },
    ],
  });
  await tick();
  const flat = seen.flatMap((m) =>
    m.kind === 'events' ? m.events.map((e) => [m.revision, e.type, e.kv.key]) : [],
  );
  assert.deepEqual(flat, [
    [r1.revision, 'put', `${p}net/a`],
    [r3.revision, 'put', `${p}net/b`],
    [r3.revision, 'delete', `${p}net/a`],
  ]);
  const del =
    seen.at(-1)!.kind === 'events'
      ? (seen.at(-1) as { events: { prevKv?: { value: string } }[] }).events
      : [];
  assert.equal(del.at(-1)?.prevKv?.value, '1', 'a delete carries the previous value');
  w.close();
  const count = seen.length;
  await s.put(`${p}net/c`, '3');
  await tick();
  assert.equal(seen.length, count, 'no events after close');
  const replay: WatchMessage[] = [];
  const w2 = await s.watch(`${p}net/`, (m) => replay.push(m), { fromRevision: r3.revision });
  await tick();
  const keys = replay.flatMap((m) =>
    m.kind === 'events' ? m.events.map((e) => e.kv.key) : m.kvs.map((kv) => kv.key),
  );
  assert.ok(
    keys.includes(`${p}net/b`) && keys.includes(`${p}net/c`),
    'replay from a past revision (or a resync)',
  );
  w2.close();
}

async function leases(s: Store, p: string): Promise<void> {
  const short = await s.grantLease({ ttlSeconds: 1 });
  const kept = await s.grantLease({ ttlSeconds: 1 });
  await s.put(`${p}hosts/a`, 'a', { lease: short.id });
  await s.put(`${p}hosts/b`, 'b', { lease: kept.id });
  const timer = setInterval(() => kept.keepAlive().catch(() => undefined), 250);
  try {
    // etcd rounds short TTLs up to its minimum, so wait for the expiry rather than a fixed time.
    for (let i = 0; i < 100 && (await s.get(`${p}hosts/a`)); i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.equal(await s.get(`${p}hosts/a`), undefined, 'expired lease took its key');
    assert.equal((await s.get(`${p}hosts/b`))?.lease, kept.id, 'keep-alive held the other');
  } finally {
    clearInterval(timer);
  }
  await assert.rejects(short.keepAlive(), code('ERR_LEASE_NOT_FOUND'));
  await kept.revoke();
  await kept.revoke();
  assert.equal(await s.get(`${p}hosts/b`), undefined, 'revoke took its key');
}

export const conformance: Record<string, Check> = { txnSemantics, badInput, watchEvents, leases };
