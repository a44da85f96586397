// Cluster keys across two daemons on one store: the ring is made once, both hosts' OverlayPorts
// get every key (applyKeys) and acknowledge it, a rotation asked of one host switches only after
// the other host installed the new key, and a host that leaves (its membership lease gone) no
// longer holds rotations back. Both daemons run in this process, each for its own host namespace.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { Client } from '../src/cli/client.js';
import { DEFAULT_PORT_KIND, PORT_KINDS, startDaemon } from '../src/daemon/daemon.js';
import { ACKS, type AppliedKeys, KEY_RING, parseRing } from '../src/daemon/keys.js';
import type { OverlayPorts } from '../src/daemon/ports.js';
import { root, sharedStore, twoHosts } from './daemon-host.js';

const skip = root ? false : 'needs root (network namespaces)';

interface KeysStatus {
  keys: { id: number }[];
  primary: number;
  pending: number | null;
  waitingFor: string[];
  rotated?: number;
}

test('keys across two daemons: applyKeys on both before the switch; a departed host does not hold rotation back', {
  skip,
}, async (t) => {
  const u = await twoHosts(t, { ns: 'vxkc', id: 'k', subnet: '192.168.212', dir: 'vxnet-kc' });
  const { store, daemons } = u;
  const hosts = u.hosts.map((h) => ({ ...h, installed: new Set<number>(), sending: 0 }));
  const violations: string[] = [];
  for (const h of hosts) {
    // The default port kind (vxnet's TAP datapath); its own applyKeys still runs after the check.
    const ports: OverlayPorts = PORT_KINDS[DEFAULT_PORT_KIND]!({
      hostNetns: h.ns,
      advertise: h.ip,
      stateDir: h.dir,
    });
    const apply = ports.applyKeys?.bind(ports);
    ports.applyKeys = (k: AppliedKeys) => {
      h.installed = new Set(k.keys.map((x) => x.id));
      for (const o of hosts) {
        const live = daemons[hosts.indexOf(o)] !== undefined;
        if (o !== h && live && o.sending !== 0 && !o.installed.has(k.primary)) {
          violations.push(`${h.id} sends with ${k.primary} before ${o.id} installed it`);
        }
      }
      h.sending = k.primary;
      return apply?.(k);
    };
    daemons.push(
      await startDaemon({
        stateDir: h.dir,
        socket: join(h.dir, 'vxnet.sock'),
        hostId: h.id,
        store: sharedStore(store),
        storeKind: 'memory',
        hostNetns: h.ns,
        advertise: h.ip,
        hostTtl: 2,
        ports,
        log: pino({ level: process.env.VXNET_TEST_LOG ?? 'silent' }),
      }),
    );
  }
  const [c1, c2] = hosts.map((h) => new Client(join(h.dir, 'vxnet.sock'))) as [Client, Client];
  assert.equal(parseRing((await store.get(KEY_RING))!.value).keys.length, 1, 'one ring for the cluster');
  assert.deepEqual(
    hosts.map((h) => h.sending),
    [1, 1],
  );
  const r = await c1.call<KeysStatus>('POST', '/keys/rotate', { TimeoutMs: 10_000 });
  assert.equal(r.rotated, 2);
  assert.equal(r.primary, 2);
  const s2 = await c2.call<KeysStatus>('GET', '/keys');
  assert.deepEqual(
    s2.keys.map((k) => k.id),
    [1, 2],
  );
  for (const h of hosts) assert.ok(h.installed.has(2), `${h.id} installed key 2`);
  const acks = (await store.list(ACKS)).kvs.map((kv) => kv.key.slice(ACKS.length)).sort();
  assert.deepEqual(acks, hosts.map((h) => h.id).sort());
  // Host 2 leaves; once its lease is gone, host 1 rotates alone.
  await daemons[1]!.close();
  daemons[1] = undefined;
  const r3 = await c1.call<KeysStatus>('POST', '/keys/rotate', { TimeoutMs: 15_000 });
  assert.equal(r3.primary, 3);
  assert.deepEqual(r3.waitingFor, []);
  assert.deepEqual(violations, []);
});
