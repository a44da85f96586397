// The etcd store against a real etcd started here (Debian's /usr/bin/etcd on 127.0.0.1, random
// ports, a temp data dir): the Store conformance checks, racing transactions, forced compaction,
// an etcd restart on the same data dir, lease expiry, and the etcd:// URL syntax.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isVxError } from '../src/errors.js';
import { deleteNetns, ensureNetns } from '../src/kernel/netns.js';
import { type EtcdServer, etcdctl, startEtcd } from '../src/lab/etcd.js';
import { conformance } from '../src/store/conformance.js';
import { type EtcdStore, openEtcdStore, parseClusterStore } from '../src/store/etcd.js';
import { openStore } from '../src/store/open.js';
import type { KeyValue, WatchMessage } from '../src/store/store.js';

let etcd: EtcdServer;
const stores: EtcdStore[] = [];
const run = `t${process.pid}-${Date.now().toString(36)}/`;

async function open(options: { requestTimeoutMs?: number } = {}): Promise<EtcdStore> {
  const s = await openEtcdStore({ endpoints: [etcd.clientUrl], requestTimeoutMs: 1000, ...options });
  stores.push(s);
  return s;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 10000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** Applies watch messages to a map the way the daemon's peer table would. */
function mirror(): { kvs: Map<string, string>; msgs: WatchMessage[]; on: (m: WatchMessage) => void } {
  const kvs = new Map<string, string>();
  const msgs: WatchMessage[] = [];
  return {
    kvs,
    msgs,
    on: (m) => {
      msgs.push(m);
      if (m.kind === 'resync') {
        kvs.clear();
        for (const kv of m.kvs) kvs.set(kv.key, kv.value);
      } else {
        for (const e of m.events) {
          if (e.type === 'put') kvs.set(e.kv.key, e.kv.value);
          else kvs.delete(e.kv.key);
        }
      }
    },
  };
}

before(async () => {
  etcd = await startEtcd();
});

after(async () => {
  for (const s of stores) await s.close();
  await etcd?.stop();
});

for (const [name, check] of Object.entries(conformance)) {
  test(`conformance: ${name}`, async () => {
    await check(await open(), `${run}${name}/`);
  });
}

test('etcd:// URLs parse like Docker 1.9 --cluster-store; bad ones are ERR_BAD_CLUSTER_STORE', () => {
  assert.deepEqual(parseClusterStore('etcd://10.0.0.1:2379,10.0.0.2'), {
    endpoints: ['http://10.0.0.1:2379', 'http://10.0.0.2:2379'],
    keyPrefix: '',
  });
  assert.deepEqual(parseClusterStore('etcd://[fd00::1]:4001/vx', { tls: true }), {
    endpoints: ['https://[fd00::1]:4001'],
    keyPrefix: 'vx/',
  });
  for (const bad of [
    'consul://h:8500',
    'etcd://',
    'etcd://h:99999',
    'etcd://h:1,',
    'http://h:2379',
    'etcd://a b',
  ]) {
    assert.throws(
      () => parseClusterStore(bad),
      (e) => isVxError(e, 'ERR_BAD_CLUSTER_STORE'),
      bad,
    );
  }
});

test('openStore picks etcd for --cluster-store, with the URL path as an invisible key prefix', async () => {
  const s = (await openStore({
    clusterStore: `${etcd.clusterStore}/${run}pfx`,
    stateDir: '/nonexistent',
  })) as EtcdStore;
  stores.push(s);
  await s.put('a', '1');
  assert.equal((await s.get('a'))?.value, '1');
  assert.deepEqual(
    (await s.list('')).kvs.map((kv) => kv.key),
    ['a'],
  );
  const raw = await open();
  assert.equal((await raw.get(`${run}pfx/a`))?.value, '1');
});

test('two clients racing on one txn: exactly one wins', async () => {
  const [a, b] = [await open(), await open()];
  const key = `${run}race/vni-4096`;
  for (let round = 0; round < 5; round++) {
    const k = `${key}-${round}`;
    const tryClaim = (s: EtcdStore, who: string) =>
      s.txn({ compare: [{ key: k, absent: true }], success: [{ type: 'put', key: k, value: who }] });
    const [ra, rb] = await Promise.all([tryClaim(a, 'a'), tryClaim(b, 'b')]);
    assert.equal(Number(ra.succeeded) + Number(rb.succeeded), 1, 'exactly one claim');
    assert.equal((await a.get(k))?.value, ra.succeeded ? 'a' : 'b');
  }
});

test('a forced compaction makes the watcher resync, with no stale key', async () => {
  const s = await open();
  const p = `${run}compact/`;
  await s.put(`${p}keep`, '1');
  const r = await s.put(`${p}gone`, '1');
  const m = mirror();
  // Watch from the past so the compaction below removes revisions the watch still needs.
  const w = await s.watch(p, m.on, { fromRevision: r.revision });
  await until('the watch saw gone', () => m.kvs.has(`${p}gone`));
  w.close();
  const d = await s.delete(`${p}gone`);
  await s.put(`${p}new`, '2');
  await s.compact(d.revision + 1);
  const m2 = mirror();
  m2.kvs.set(`${p}gone`, 'stale');
  const w2 = await s.watch(p, m2.on, { fromRevision: r.revision });
  await until('a resync', () => m2.msgs.some((x) => x.kind === 'resync'));
  assert.deepEqual([...m2.kvs.keys()].sort(), [`${p}keep`, `${p}new`]);
  await s.put(`${p}after`, '3');
  await until('events after the resync', () => m2.kvs.has(`${p}after`));
  w2.close();
});

test('etcd restart: unavailable while down, writes and the watch resume after', async () => {
  const s = await open();
  const p = `${run}restart/`;
  const m = mirror();
  const w = await s.watch(p, m.on);
  await s.put(`${p}a`, '1');
  await s.put(`${p}b`, '1');
  await until('the watch saw a and b', () => m.kvs.size === 2);
  const lease = await s.grantLease({ ttlSeconds: 30 });
  // A second client deletes b while the first one's watch is down, then etcd restarts.
  const { dataDir, clientUrl, peerUrl } = etcd;
  await etcd.stop({ keepData: true });
  const t0 = Date.now();
  await assert.rejects(s.put(`${p}c`, '1'), (e) => isVxError(e, 'ERR_STORE_UNAVAILABLE'));
  await assert.rejects(s.get(`${p}a`), (e) => isVxError(e, 'ERR_STORE_UNAVAILABLE'));
  await assert.rejects(lease.keepAlive(), (e) => isVxError(e, 'ERR_STORE_UNAVAILABLE'));
  assert.ok(Date.now() - t0 < 3000, `unavailable reported in ${Date.now() - t0} ms`);
  etcd = await startEtcd({ dataDir, clientUrl, peerUrl });
  const other = await open();
  await other.delete(`${p}b`);
  await until('writes resume', async () => {
    try {
      await s.put(`${p}c`, '2');
      return true;
    } catch (e) {
      assert.ok(isVxError(e, 'ERR_STORE_UNAVAILABLE'), String(e));
      return false;
    }
  });
  await until('the watch resynced and caught up', () => m.kvs.get(`${p}c`) === '2' && !m.kvs.has(`${p}b`));
  assert.ok(
    m.msgs.some((x) => x.kind === 'resync'),
    'a resync after the reconnect',
  );
  assert.deepEqual([...m.kvs.keys()].sort(), [`${p}a`, `${p}c`]);
  await lease.keepAlive();
  w.close();
});

test("a broken watch's backoff wait ends as soon as a call of the store gets through", async () => {
  const s = await open();
  // The wait resync() takes between attempts while etcd is away (EtcdWatch): a successful call
  // means etcd is back, so the watch resyncs now instead of after up to maxRetryMs.
  const napping = s as unknown as { nap(ms: number): Promise<void> };
  const t0 = Date.now();
  const nap = napping.nap(5000);
  await s.get(`${run}nap`);
  await nap;
  assert.ok(Date.now() - t0 < 1000, `the wait ended after ${Date.now() - t0} ms`);
  // Without a successful call it lasts its time.
  const t1 = Date.now();
  await napping.nap(300);
  assert.ok(Date.now() - t1 >= 290);
});

test('a lease expires after its TTL once keep-alives stop; kept-alive keys stay', async () => {
  const s = await open();
  const p = `${run}lease/`;
  const lease = await s.grantLease({ ttlSeconds: 2 });
  assert.ok(Number.isSafeInteger(lease.id) && lease.id > 0);
  await s.put(`${p}host1`, 'x', { lease: lease.id });
  const kv = (await s.get(`${p}host1`)) as KeyValue;
  assert.equal(kv.lease, lease.id);
  const m = mirror();
  const w = await s.watch(p, m.on, { fromRevision: kv.modRevision });
  // Keep it alive past its TTL, then stop.
  for (let i = 0; i < 6; i++) {
    await lease.keepAlive();
    await sleep(500);
  }
  assert.ok(await s.get(`${p}host1`), 'kept alive past the TTL');
  const stopped = Date.now();
  await until('the key to go with its lease', () => !m.kvs.has(`${p}host1`) && m.msgs.length > 1, 6000);
  const took = Date.now() - stopped;
  assert.ok(took >= 1000 && took < 5000, `expired ${took} ms after the last keep-alive`);
  await assert.rejects(lease.keepAlive(), (e) => isVxError(e, 'ERR_LEASE_NOT_FOUND'));
  w.close();
});

test('with a dead endpoint listed first or second, every call reaches the live one', async () => {
  const s = await openEtcdStore({
    endpoints: ['http://127.0.0.1:9', etcd.clientUrl],
    requestTimeoutMs: 1000,
  });
  stores.push(s);
  for (let i = 0; i < 10; i++) await s.put(`${run}multi/${i}`, String(i));
  assert.equal((await s.list(`${run}multi/`)).kvs.length, 10);
});

test('a store pointed at nothing fails fast with ERR_STORE_UNAVAILABLE', async () => {
  const t0 = Date.now();
  await assert.rejects(openEtcdStore({ endpoints: ['http://127.0.0.1:9'], requestTimeoutMs: 500 }), (e) =>
    isVxError(e, 'ERR_STORE_UNAVAILABLE'),
  );
  assert.ok(Date.now() - t0 < 2000);
});

test('startEtcd inside a namespace serves there; stop() kills it and removes its data dir', async (t) => {
  const ns = `vxetcd-${randomBytes(3).toString('hex')}`;
  await ensureNetns(ns);
  t.after(() => deleteNetns(ns, { killProcesses: true }));
  const url = 'http://127.0.0.1:2379';
  const e = await startEtcd({ netns: ns, clientUrl: url, peerUrl: 'http://127.0.0.1:2380' });
  t.after(() => e.stop());
  await etcdctl(['put', 'k', 'v'], { endpoint: url, netns: ns });
  assert.equal(await etcdctl(['get', '--print-value-only', 'k'], { endpoint: url, netns: ns }), 'v\n');
  assert.equal(e.clusterStore, 'etcd://127.0.0.1:2379');
  await e.stop();
  assert.equal(existsSync(e.dataDir), false, 'data dir removed');
  assert.throws(() => process.kill(e.pid, 0), 'etcd is gone');
});

test('TLS: --etcd-cacert/--etcd-cert/--etcd-key reach an etcd that requires client certificates', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vxnet-etcd-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = (n: string) => join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl(
    'req',
    '-x509',
    ...key,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '1',
    '-subj',
    '/CN=vxnet-test-ca',
  );
  for (const [name, ext] of [
    ['server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth'],
    ['client', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    ssl('req', ...key, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    writeFileSync(f(`${name}.ext`), `${ext}\n`);
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '1',
      '-extfile',
      `${name}.ext`,
    );
  }
  const secure = await startEtcd({
    tls: { certFile: f('server.crt'), keyFile: f('server.key'), caFile: f('ca.crt') },
  });
  t.after(() => secure.stop());
  assert.match(secure.clientUrl, /^https:/);
  const s = await openStore({
    clusterStore: secure.clusterStore,
    stateDir: dir,
    etcdTls: { caFile: f('ca.crt'), certFile: f('client.crt'), keyFile: f('client.key') },
  });
  t.after(() => s.close());
  await s.put('tls/a', '1');
  assert.equal((await s.get('tls/a'))?.value, '1');
  await assert.rejects(
    openStore({
      clusterStore: secure.clusterStore,
      stateDir: dir,
      etcdTls: { caFile: f('ca.crt') },
      requestTimeoutMs: 1000,
    }),
    (e) => isVxError(e, 'ERR_STORE_UNAVAILABLE'),
    'no client certificate, no store',
  );
  await assert.rejects(
    openStore({ clusterStore: secure.clusterStore, stateDir: dir, etcdTls: { caFile: f('nope.crt') } }),
    (e) => isVxError(e, 'ERR_BAD_CLUSTER_STORE'),
  );
});
