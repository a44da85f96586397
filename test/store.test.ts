// The store: semantics against a plain reference model, the embedded store against the memory
// store (with reopen = recovery from disk), watches, leases, and crash safety under SIGKILL.
// When STORE_CRASH_CHILD is set this file is the child process the crash test kills.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isVxError } from '../src/errors.js';
import { conformance } from '../src/store/conformance.js';
import { openEmbeddedStore } from '../src/store/embedded.js';
import { createMemoryStore } from '../src/store/memory.js';
import type { KeyValue, Op, Store, Txn, WatchMessage } from '../src/store/store.js';

const CHILD = process.env.STORE_CRASH_CHILD;

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'vxnet-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// ---- a plain reference model of etcd's txn semantics ------------------------------------------
class Reference {
  kvs = new Map<string, KeyValue>();
  revision = 0;
  txn(t: Txn): boolean {
    const ok = t.compare.every((c) => {
      const kv = this.kvs.get(c.key);
      if ('absent' in c) return !kv;
      if ('value' in c) return kv?.value === c.value;
      return (kv?.modRevision ?? 0) === c.modRevision;
    });
    const ops = ok ? t.success : (t.failure ?? []);
    const next = new Map(this.kvs);
    let changed = false;
    const rev = this.revision + 1;
    for (const op of ops) {
      if (op.type === 'put') {
        const prev = next.get(op.key);
        const kv = { key: op.key, value: op.value, modRevision: rev, lease: 0 };
        next.set(op.key, {
          ...kv,
          createRevision: prev?.createRevision ?? rev,
          version: (prev?.version ?? 0) + 1,
        });
        changed = true;
      } else {
        for (const k of [...next.keys()]) {
          if (op.type === 'delete' ? k === op.key : k.startsWith(op.prefix))
            changed = next.delete(k) || changed;
        }
      }
    }
    this.kvs = next;
    if (changed) this.revision = rev;
    return ok;
  }
  list(prefix: string): KeyValue[] {
    return [...this.kvs.values()]
      .filter((kv) => kv.key.startsWith(prefix))
      .sort((a, b) => (a.key < b.key ? -1 : 1));
  }
}

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

const KEYS = ['a/1', 'a/2', 'a/3', 'ab', 'b/1', 'b/2', 'c'];

function randomTxn(r: () => number, ref: Reference): Txn {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  const keys = [...KEYS].sort(() => r() - 0.5);
  const ops = (n: number): Op[] => {
    const out: Op[] = [];
    for (let i = 0; i < n; i++) {
      const key = keys.pop()!;
      if (r() < 0.7) out.push({ type: 'put', key, value: `v${Math.floor(r() * 5)}` });
      else out.push({ type: 'delete', key });
    }
    return out;
  };
  if (r() < 0.1) return { compare: [], success: [{ type: 'deletePrefix', prefix: pick(['a/', 'b', 'zz']) }] };
  const key = pick(KEYS);
  const cur = ref.kvs.get(key);
  const compare = [
    pick([
      { key, absent: true as const },
      { key, modRevision: r() < 0.7 ? (cur?.modRevision ?? 0) : 999 },
      { key, value: r() < 0.7 ? (cur?.value ?? 'x') : 'nope' },
    ]),
  ];
  return { compare: r() < 0.3 ? [] : compare, success: ops(1 + Math.floor(r() * 2)), failure: ops(1) };
}

async function dump(s: Store) {
  const { revision, kvs } = await s.list('');
  return { revision, kvs };
}

if (!CHILD) {
  test('memory store matches the reference model on random transactions', async () => {
    for (let seed = 1; seed <= 5; seed++) {
      const r = rng(seed);
      const ref = new Reference();
      const mem = createMemoryStore();
      for (let i = 0; i < 300; i++) {
        const t = randomTxn(r, ref);
        const got = await mem.txn(t);
        assert.equal(got.succeeded, ref.txn(t), `seed ${seed} op ${i}`);
        assert.equal(got.revision, ref.revision);
      }
      const prefix = ['', 'a', 'a/', 'b/'][seed % 4]!;
      assert.deepEqual((await mem.list(prefix)).kvs, ref.list(prefix));
      await mem.close();
    }
  });

  test('embedded store matches the memory store on random ops, across reopen and compaction', async (t) => {
    const dir = tempDir(t);
    const r = rng(42);
    const ref = new Reference();
    const mem = createMemoryStore();
    let emb = await openEmbeddedStore({ dir, compactBytes: 2048 });
    for (let i = 0; i < 400; i++) {
      const txn = randomTxn(r, ref);
      ref.txn(txn);
      assert.deepEqual(await emb.txn(txn), await mem.txn(txn));
      if (i % 37 === 36) {
        await emb.close();
        emb = await openEmbeddedStore({ dir, compactBytes: 2048 });
        assert.equal(emb.recovery.truncatedBytes, 0);
        assert.deepEqual(await dump(emb), await dump(mem));
      }
    }
    assert.ok(existsSync(join(dir, 'snapshot')), 'compaction wrote a snapshot');
    assert.deepEqual(await dump(emb), await dump(mem));
    await emb.close();
    await mem.close();
  });

  for (const [name, check] of Object.entries(conformance)) {
    test(`conformance ${name}: memory store`, async () => {
      const s = createMemoryStore();
      await check(s, '/t/');
      await s.close();
    });
    test(`conformance ${name}: embedded store`, async (t) => {
      const s = await openEmbeddedStore({ dir: tempDir(t) });
      await check(s, '/t/');
      await s.close();
      await assert.rejects(s.get('/t/a'), (e) => isVxError(e, 'ERR_STORE_CLOSED'));
    });
  }

  test('watch: prefix events in order, replay from a revision, resync when history is gone', async (t) => {
    const dir = tempDir(t);
    let s = await openEmbeddedStore({ dir, historyLimit: 3 });
    const seen: WatchMessage[] = [];
    const w = await s.watch('net/', (m) => seen.push(m));
    await s.put('net/a', '1');
    await s.put('other', 'x');
    await s.txn({
      compare: [],
      success: [
        { type: 'put', key: 'net/b', value: '2' },
        { type: 'delete', key: 'net/a' },
      ],
    });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(
      seen.map((m) => m.kind === 'events' && [m.revision, m.events.map((e) => `${e.type} ${e.kv.key}`)]),
      [
        [1, ['put net/a']],
        [3, ['put net/b', 'delete net/a']],
      ],
    );
    const del = (seen[1] as { events: { prevKv?: KeyValue }[] }).events[1]!;
    assert.equal(del.prevKv?.value, '1');
    w.close();
    const replay: WatchMessage[] = [];
    await s.watch('net/', (m) => replay.push(m), { fromRevision: 3 });
    await new Promise((r) => setImmediate(r));
    assert.equal(replay.length, 1);
    assert.equal(replay[0]!.kind, 'events');
    for (let i = 0; i < 4; i++) await s.put(`x${i}`, '1');
    const gone: WatchMessage[] = [];
    await s.watch('net/', (m) => gone.push(m), { fromRevision: 2 });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(gone[0], { kind: 'resync', revision: 7, kvs: [await s.get('net/b')] });
    await s.close();
    s = await openEmbeddedStore({ dir });
    const after: WatchMessage[] = [];
    await s.watch('net/', (m) => after.push(m), { fromRevision: 5 });
    await s.put('net/c', '3');
    await new Promise((r) => setImmediate(r));
    assert.equal(after[0]!.kind, 'resync', 'after a restart the history is gone');
    assert.deepEqual(after[1]!.kind === 'events' && after[1]!.events[0]!.kv.key, 'net/c');
    await s.close();
  });

  test('a state dir opens in one process at a time', async (t) => {
    const dir = tempDir(t);
    const s = await openEmbeddedStore({ dir });
    await assert.rejects(openEmbeddedStore({ dir }), (e) => isVxError(e, 'ERR_STORE_LOCKED'));
    await s.close();
    await (await openEmbeddedStore({ dir })).close();
  });

  test('a torn or corrupt journal tail is cut off and the store goes on', async (t) => {
    for (const damage of ['torn', 'flipped', 'garbage'] as const) {
      const dir = tempDir(t);
      let s = await openEmbeddedStore({ dir });
      for (let i = 0; i < 5; i++) await s.put(`k${i}`, `v${i}`);
      await s.close();
      const path = join(dir, 'journal');
      const size = statSync(path).size;
      if (damage === 'torn') truncateSync(path, size - 3);
      if (damage === 'flipped') {
        const b = readFileSync(path);
        b[b.length - 2]! ^= 0xff;
        writeFileSync(path, b);
      }
      if (damage === 'garbage') appendFileSync(path, Buffer.from('VXJ1\xff\xff\xff\x00garbage'));
      s = await openEmbeddedStore({ dir });
      assert.ok(s.recovery.truncatedBytes > 0, damage);
      const keys = (await s.list('k')).kvs.map((kv) => kv.key);
      assert.deepEqual(
        keys,
        damage === 'garbage' ? ['k0', 'k1', 'k2', 'k3', 'k4'] : ['k0', 'k1', 'k2', 'k3'],
        damage,
      );
      await s.put('after', '1');
      await s.close();
      s = await openEmbeddedStore({ dir });
      assert.equal(s.recovery.truncatedBytes, 0);
      assert.equal((await s.get('after'))?.value, '1');
      await s.close();
    }
  });

  test('kill -9 at random moments loses no acknowledged write and never corrupts', async (t) => {
    const dir = tempDir(t);
    const r = rng(Date.now());
    let lastAcked = -1;
    let torn = 0;
    for (let round = 0; round < 6; round++) {
      lastAcked = Math.max(lastAcked, await runAndKill(dir, 150 + Math.floor(r() * 400)));
      const s = await openEmbeddedStore({ dir, compactBytes: 4096 });
      const count = Number((await s.get('count'))?.value ?? 0);
      assert.ok(
        count >= lastAcked + 1,
        `round ${round}: ${count} writes survive, ${lastAcked + 1} acknowledged`,
      );
      assert.deepEqual(
        (await s.list('k/')).kvs.map((kv) => kv.key),
        expectedKeys(count),
        'keys match the count',
      );
      lastAcked = count - 1;
      torn += s.recovery.truncatedBytes > 0 ? 1 : 0;
      await s.close();
    }
    t.diagnostic(`${lastAcked + 1} writes over 6 kills, ${torn} recoveries cut a torn tail`);
    assert.ok(existsSync(join(dir, 'snapshot')), 'compaction ran between kills');
    assert.ok(lastAcked > 20, `the child made progress (${lastAcked + 1} writes)`);
  });
}

/** Keys present after `count` child writes: write i puts k/i and deletes k/(i-3) when i % 2 == 0. */
function expectedKeys(count: number): string[] {
  const keys = new Set<number>();
  for (let i = 0; i < count; i++) {
    keys.add(i);
    if (i % 2 === 0) keys.delete(i - 3);
  }
  return [...keys].map((i) => `k/${String(i).padStart(6, '0')}`).sort();
}

/** Starts a child that writes until killed; returns the last write it acknowledged. */
function runAndKill(dir: string, afterMs: number): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], {
    // Without NODE_TEST_CONTEXT: the child is a plain program, not a test-runner subprocess.
    env: { ...process.env, STORE_CRASH_CHILD: dir, NODE_TEST_CONTEXT: undefined },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let acked = -1;
  let buf = '';
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) {
        if (l === 'ready') setTimeout(() => child.kill('SIGKILL'), afterMs);
        else acked = Number(l);
      }
    });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(acked);
      else reject(new Error(`child exited ${code} before the kill`));
    });
  });
}

async function childMain(dir: string): Promise<void> {
  const s = await openEmbeddedStore({ dir, compactBytes: 4096 });
  let i = Number((await s.get('count'))?.value ?? 0);
  process.stdout.write('ready\n');
  for (;;) {
    const key = (n: number) => `k/${String(n).padStart(6, '0')}`;
    const ops: Op[] = [
      { type: 'put', key: key(i), value: 'x'.repeat(i % 50) },
      { type: 'put', key: 'count', value: String(i + 1) },
    ];
    if (i % 2 === 0 && i >= 3) ops.push({ type: 'delete', key: key(i - 3) });
    await s.txn({ compare: [], success: ops });
    process.stdout.write(`${i}\n`);
    i++;
  }
}

if (CHILD) await childMain(CHILD);
