// Cluster keys (src/daemon/keys.ts): the rotation protocol over one in-memory store shared by
// three simulated daemons' key managers. The invariant under test: no host ever sends with a key
// that some live host has not installed for receiving.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { pino } from 'pino';
import {
  ACKS,
  type AppliedKeys,
  DEFAULT_ROTATE_INTERVAL_MS,
  deriveSa,
  KEEP_KEYS,
  KEY_RING,
  KeyManager,
  type KeyManagerOptions,
  parseRing,
} from '../src/daemon/keys.js';
import { isVxError } from '../src/errors.js';
import { createMemoryStore } from '../src/store/memory.js';
import type { Store } from '../src/store/store.js';

/** A simulated host: what its datapath would have installed, and a log that must never hold a secret. */
interface Host {
  id: string;
  km: KeyManager;
  installed: Set<number>;
  sending: number;
  logText: () => string;
  /** When set, apply waits for it (a slow or stuck host). */
  gate?: Promise<void>;
}

function capture(): { log: pino.Logger; text: () => string } {
  let buf = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      buf += chunk.toString();
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, stream), text: () => buf };
}

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

function cluster(store: Store, ids: string[], extra: Partial<KeyManagerOptions> = {}) {
  const hosts: Host[] = [];
  const violations: string[] = [];
  for (const id of ids) {
    const { log, text } = capture();
    const h = { id, installed: new Set<number>(), sending: 0, logText: text } as Host;
    h.km = new KeyManager({
      store,
      hostId: id,
      log,
      hosts: async () => ids,
      rotateEveryMs: 0,
      ...extra,
      apply: async (k: AppliedKeys) => {
        if (h.gate) await h.gate;
        h.installed = new Set(k.keys.map((x) => x.id));
        assert.ok(
          k.keys.every((x) => x.secret.length === 16),
          'AES-128 secrets',
        );
        // The invariant: the key this host is about to send with is installed everywhere.
        for (const o of hosts) {
          if (o !== h && o.sending !== 0 && !o.installed.has(k.primary) && o.installed.size > 0) {
            violations.push(`${id} sends with ${k.primary} but ${o.id} has only ${[...o.installed]}`);
          }
        }
        h.sending = k.primary;
      },
    });
    hosts.push(h);
  }
  return { hosts, violations };
}

test('keys: one ring for the cluster; a rotation installs the new key everywhere before anyone sends with it; 3 keys kept', async () => {
  const store = createMemoryStore();
  const { hosts, violations } = cluster(store, ['h1', 'h2', 'h3']);
  await Promise.all(hosts.map((h) => h.km.start()));
  const ring0 = parseRing((await store.get(KEY_RING))!.value);
  assert.equal(ring0.keys.length, 1, 'the first daemon created one key; the others adopted it');
  await until(() => hosts.every((h) => h.sending === 1), 'all hosts send with key 1');

  for (let round = 2; round <= 6; round++) {
    const { id } = await hosts[round % 3].km.rotate();
    assert.equal(id, round);
    await until(() => hosts.every((h) => h.sending === round), `all hosts on key ${round}`);
    const ring = parseRing((await store.get(KEY_RING))!.value);
    assert.equal(ring.primary, round);
    assert.equal(ring.pending, null);
    assert.deepEqual(
      ring.keys.map((k) => k.id),
      Array.from(
        { length: Math.min(round, KEEP_KEYS) },
        (_, i) => round - Math.min(round, KEEP_KEYS) + 1 + i,
      ),
      'the oldest key is retired, KEEP_KEYS remain',
    );
    for (const h of hosts) assert.deepEqual([...h.installed].sort(), ring.keys.map((k) => k.id).sort());
  }
  assert.deepEqual(violations, []);
  // Secrets are never logged (ids are).
  const secrets = parseRing((await store.get(KEY_RING))!.value).keys.map((k) => k.secret);
  for (const h of hosts) {
    assert.match(h.logText(), /keys applied/);
    for (const s of secrets) assert.ok(!h.logText().includes(s), `${h.id} logged a secret`);
  }
  const st = await hosts[0].km.status();
  assert.equal(st.primary, 6);
  assert.ok(!JSON.stringify(st).includes(secrets[0]), 'status() carries no secret');
  for (const h of hosts) h.km.close();
  await store.close();
});

test('keys: a host that has not installed the new key holds the switch back; a race to rotate adds one key', async () => {
  const store = createMemoryStore();
  const { hosts, violations } = cluster(store, ['a', 'b', 'c']);
  await Promise.all(hosts.map((h) => h.km.start()));
  await until(() => hosts.every((h) => h.sending === 1), 'key 1 everywhere');
  let release!: () => void;
  hosts[2].gate = new Promise((r) => {
    release = r;
  });
  // Two hosts start a rotation at once: one key is added, both wait for the same switch.
  const r1 = hosts[0].km.rotate({ timeoutMs: 10_000 });
  const r2 = hosts[1].km.rotate({ timeoutMs: 10_000 });
  await until(async () => (await hosts[0].km.status()).pending === 2, 'key 2 pending');
  await until(() => hosts[0].installed.has(2) && hosts[1].installed.has(2), 'a and b installed key 2');
  const st = await hosts[0].km.status();
  assert.deepEqual(st.waitingFor, ['c'], 'the stuck host is named');
  assert.equal(hosts[0].sending, 1, 'nobody sends with key 2 while c cannot open it');
  assert.equal(hosts[1].sending, 1);
  release();
  hosts[2].gate = undefined;
  assert.deepEqual([await r1, await r2], [{ id: 2 }, { id: 2 }]);
  await until(() => hosts.every((h) => h.sending === 2), 'key 2 everywhere');
  assert.deepEqual(violations, []);
  assert.equal(parseRing((await store.get(KEY_RING))!.value).keys.length, 2);
  // A rotation that cannot complete times out with the missing host's name.
  hosts[1].gate = new Promise(() => {});
  await assert.rejects(
    hosts[0].km.rotate({ timeoutMs: 300 }),
    (e) => isVxError(e, 'ERR_ROTATION_TIMEOUT') && /host\(s\) b /.test(e.message),
  );
  for (const h of hosts) h.km.close();
  await store.close();
});

test('keys: rotation on a schedule; ack records per host; local key file is 0600', async () => {
  const dir = mkdtempSync(join(tmpdir(), `vxnet-keys-${process.pid}-`));
  try {
    assert.equal(DEFAULT_ROTATE_INTERVAL_MS, 12 * 3600 * 1000);
    const store = createMemoryStore();
    const { hosts, violations } = cluster(store, ['x', 'y'], { rotateEveryMs: 150 });
    hosts[0].km = new KeyManager({
      store,
      hostId: 'x',
      log: pino({ level: 'silent' }),
      hosts: async () => ['x', 'y'],
      rotateEveryMs: 150,
      keyFile: join(dir, 'keys.json'),
      apply: (k) => {
        hosts[0].installed = new Set(k.keys.map((x) => x.id));
        hosts[0].sending = k.primary;
      },
    });
    await Promise.all(hosts.map((h) => h.km.start()));
    await until(() => hosts.every((h) => h.sending >= 4), 'three scheduled rotations', 10_000);
    assert.deepEqual(violations, []);
    const acks = await store.list(ACKS);
    assert.deepEqual(acks.kvs.map((kv) => kv.key.slice(ACKS.length)).sort(), ['x', 'y']);
    const f = join(dir, 'keys.json');
    assert.equal(statSync(f).mode & 0o777, 0o600);
    assert.ok(parseRing(readFileSync(f, 'utf8')).keys.length <= KEEP_KEYS);
    for (const h of hosts) h.km.close();
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('keys: deriveSa gives both ends the same SA, a different one per direction and per key', () => {
  const secret = Buffer.alloc(16, 7);
  const ab = deriveSa(secret, 3, '192.0.2.1', '192.0.2.2');
  assert.deepEqual(deriveSa(secret, 3, '192.0.2.1', '192.0.2.2'), ab);
  const ba = deriveSa(secret, 3, '192.0.2.2', '192.0.2.1');
  const ab4 = deriveSa(secret, 4, '192.0.2.1', '192.0.2.2');
  for (const o of [ba, ab4]) {
    assert.notDeepEqual(o.key, ab.key);
    assert.notEqual(o.spi, ab.spi);
  }
  assert.equal(ab.key.length, 16);
  assert.equal(ab.salt.length, 4);
  assert.ok(ab.spi >= 256 && ab.spi <= 0xffffffff);
  assert.throws(
    () =>
      new KeyManager({
        store: createMemoryStore(),
        hostId: 'z',
        log: pino({ level: 'silent' }),
        apply: () => {},
        rotateEveryMs: -1,
      }),
    (e) => isVxError(e, 'ERR_INVALID_ARG'),
  );
});

test('keys: an ack that fails to write (store away) is retried until it lands, and the rotation completes', async () => {
  const store = createMemoryStore();
  let failures = 3;
  // The store refuses this host's ack puts a few times, as etcd would while unreachable.
  const flaky: Store = Object.create(store) as Store;
  flaky.put = async (key, value, opts) => {
    if (key.startsWith(ACKS) && failures > 0) {
      failures--;
      throw Object.assign(new Error('store unavailable'), { code: 'ERR_STORE_UNAVAILABLE' });
    }
    return store.put(key, value, opts);
  };
  const { hosts, violations } = cluster(store, ['p', 'q']);
  const { log, text } = capture();
  hosts[1].km = new KeyManager({
    store: flaky,
    hostId: 'q',
    log,
    hosts: async () => ['p', 'q'],
    rotateEveryMs: 0,
    retryMs: 20,
    apply: (k) => {
      hosts[1].installed = new Set(k.keys.map((x) => x.id));
      hosts[1].sending = k.primary;
    },
  });
  await Promise.all(hosts.map((h) => h.km.start()));
  assert.deepEqual(await hosts[0].km.rotate({ timeoutMs: 5000 }), { id: 2 });
  assert.equal(failures, 0, 'the failing puts happened');
  await until(() => hosts.every((h) => h.sending === 2), 'both on key 2');
  assert.match(text(), /retrying/);
  assert.deepEqual(violations, []);
  for (const h of hosts) h.km.close();
  await store.close();
});

test('keys: restoreFromFile installs the key file ring (store away); start() re-applies only a different ring', async () => {
  const dir = mkdtempSync(join(tmpdir(), `vxnet-keys-${process.pid}-`));
  try {
    const keyFile = join(dir, 'keys.json');
    const store = createMemoryStore();
    const applied: AppliedKeys[] = [];
    const { log, text } = capture();
    const manager = (s: Store) =>
      new KeyManager({
        store: s,
        hostId: 'r',
        log,
        hosts: async () => ['r'],
        rotateEveryMs: 0,
        keyFile,
        apply: (k) => {
          applied.push(k);
        },
      });
    // No file yet: nothing installed (encrypted ports send nothing).
    const none = manager(store);
    assert.equal(await none.restoreFromFile(), false);
    assert.equal(applied.length, 0);
    await none.start();
    none.close();
    const ring = parseRing(readFileSync(keyFile, 'utf8'));
    applied.length = 0;

    // A restart with the store away: the file's ring, secrets and all; start() then keeps it.
    const again = manager(store);
    assert.equal(await again.restoreFromFile(), true);
    assert.equal(applied.length, 1);
    assert.equal(applied[0]!.primary, ring.primary);
    assert.deepEqual(
      applied[0]!.keys.map((k) => [k.id, k.secret.toString('base64')]),
      ring.keys.map((k) => [k.id, k.secret]),
    );
    await again.start();
    assert.equal(applied.length, 1, 'the same ring is not applied twice');
    again.close();
    assert.doesNotMatch(text(), new RegExp(ring.keys[0]!.secret.replace(/[+/=]/g, '.')), 'no secret logged');

    // The store has a new ring with the same ids (rebuilt cluster store): start() applies it.
    await store.put(
      KEY_RING,
      JSON.stringify({
        ...ring,
        keys: ring.keys.map((k) => ({ ...k, secret: Buffer.alloc(16, 7).toString('base64') })),
      }),
    );
    applied.length = 0;
    const rebuilt = manager(store);
    assert.equal(await rebuilt.restoreFromFile(), true);
    await rebuilt.start();
    assert.equal(applied.length, 2);
    assert.deepEqual(applied[1]!.keys[0]!.secret, Buffer.alloc(16, 7));
    rebuilt.close();
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
