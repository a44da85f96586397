// Cluster keys across two daemons on one store: the ring is made once, both hosts' OverlayPorts
// get every key (applyKeys) and acknowledge it, a rotation asked of one host switches only after
// the other host installed the new key, and a host that leaves (its membership lease gone) no
// longer holds rotations back. Both daemons run in this process, each for its own host namespace.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { Client } from '../src/cli/client.js';
import { DEFAULT_PORT_KIND, PORT_KINDS, type RunningDaemon, startDaemon } from '../src/daemon/daemon.js';
import { ACKS, type AppliedKeys, KEY_RING, parseRing } from '../src/daemon/keys.js';
import type { OverlayPorts } from '../src/daemon/ports.js';
import { addAddr } from '../src/kernel/addr.js';
import { ensureVeth, setLink } from '../src/kernel/link.js';
import { deleteNetns, ensureNetns, listNetns } from '../src/kernel/netns.js';
import { createMemoryStore } from '../src/store/memory.js';
import type { Store } from '../src/store/store.js';
import { root } from './daemon-host.js';

const skip = root ? false : 'needs root (network namespaces)';

function shared(store: Store): Store {
  return {
    get: (k) => store.get(k),
    list: (p) => store.list(p),
    put: (k, v, o) => store.put(k, v, o),
    delete: (k) => store.delete(k),
    txn: (t) => store.txn(t),
    watch: (p, cb, o) => store.watch(p, cb, o),
    grantLease: (o) => store.grantLease(o),
    close: async () => undefined,
  };
}

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
  const tag = randomBytes(3).toString('hex');
  const hosts = [1, 2].map((i) => ({
    ns: `vxkc${i}-${tag}`,
    id: `k${i}${tag}`,
    ip: `192.168.212.${i}`,
    dir: mkdtempSync(join(tmpdir(), `vxnet-kc${i}-`)),
    installed: new Set<number>(),
    sending: 0,
  }));
  const store = createMemoryStore();
  const daemons: (RunningDaemon | undefined)[] = [];
  const violations: string[] = [];
  t.after(async () => {
    for (const d of daemons) await d?.close();
    await store.close();
    for (const n of await listNetns())
      if (hosts.some((h) => n.includes(`-${h.id}-`))) await deleteNetns(n, { killProcesses: true });
    for (const h of hosts) {
      await deleteNetns(h.ns, { killProcesses: true });
      rmSync(h.dir, { recursive: true, force: true });
    }
  });
  for (const h of hosts) await ensureNetns(h.ns);
  await ensureVeth({ name: 'ul0', peer: 'ul0p', netns: hosts[0]!.ns, peerNetns: hosts[1]!.ns });
  await setLink('ul0p', { netns: hosts[1]!.ns, up: true });
  await setLink('ul0', { netns: hosts[0]!.ns, up: true });
  await addAddr('ul0', `${hosts[0]!.ip}/24`, { netns: hosts[0]!.ns });
  await addAddr('ul0p', `${hosts[1]!.ip}/24`, { netns: hosts[1]!.ns });
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
        store: shared(store),
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
