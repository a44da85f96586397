// Membership (this host's endpoints published on its lease) and the peer table (other hosts'
// records applied to the VXLAN ports) on the in-memory store, no root needed: lease expiry
// withdraws a dead host's endpoints, a restart re-adopts them without one delete event, a lost
// lease is replaced, and a watch resync leaves no stale entry in the applied table.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { Membership } from '../src/daemon/membership.js';
import { PeerTable } from '../src/daemon/peers.js';
import type { OverlayPorts, PortRef, RemoteEndpoint } from '../src/daemon/ports.js';
import {
  type EndpointRecord,
  endpointKey,
  memberKey,
  PEERS,
  type PeerRecord,
  peerKey,
} from '../src/daemon/records.js';
import { createMemoryStore } from '../src/store/memory.js';
import type { Lease, Store, WatchEvent, WatchMessage } from '../src/store/store.js';

const log = pino({ level: 'silent' });

function endpoint(host: string, net: string, n: number): EndpointRecord {
  return {
    id: `ep${host}${n}`,
    networkId: net,
    network: net,
    containerId: `c${n}`,
    container: `c${host}${n}`,
    host,
    subnet: '10.1.0.0/24',
    ip: `10.1.0.${n}`,
    address: `10.1.0.${n}/24`,
    mac: `02:42:0a:01:00:${n.toString(16).padStart(2, '0')}`,
    ifname: 'eth0',
    aliases: [],
  };
}

const putEp = (s: Store, ep: EndpointRecord) => s.put(endpointKey(ep.networkId, ep.id), JSON.stringify(ep));

async function until<T>(what: string, f: () => Promise<T | undefined | false>, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await f();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function published(s: Store): Promise<Map<string, PeerRecord & { lease: number }>> {
  const { kvs } = await s.list(PEERS);
  return new Map(kvs.map((kv) => [kv.key, { ...(JSON.parse(kv.value) as PeerRecord), lease: kv.lease }]));
}

test('membership publishes this host’s endpoints on its lease; they expire when it stops renewing', async (t) => {
  const store = createMemoryStore();
  t.after(() => store.close());
  const mine = [endpoint('h1', 'n1', 2), endpoint('h1', 'n1', 3)];
  const theirs = endpoint('h2', 'n1', 4);
  for (const ep of [...mine, theirs]) await putEp(store, ep);
  const m = new Membership({ store, hostId: 'h1', advertise: '192.0.2.1', ttlSeconds: 2, log });
  assert.equal(m.leaseTtl, 1, 'a second of the host TTL is left for expiry checks and delivery');
  await m.start();
  const pub = await published(store);
  assert.deepEqual(
    [...pub.keys()].sort(),
    mine.map((e) => peerKey('n1', e.id)),
    'only this host’s endpoints are published',
  );
  const one = pub.get(peerKey('n1', mine[0]!.id))!;
  assert.deepEqual(one, {
    host: 'h1',
    networkId: 'n1',
    endpointId: mine[0]!.id,
    ip: '10.1.0.2',
    mac: mine[0]!.mac,
    vtep: '192.0.2.1',
    lease: m.leaseId,
  });
  assert.equal((await store.get(memberKey('h1')))?.lease, m.leaseId);
  // An endpoint added and one removed later are mirrored.
  const added = endpoint('h1', 'n2', 5);
  await putEp(store, added);
  await store.delete(endpointKey('n1', mine[1]!.id));
  await until('the mirror to follow', async () => {
    const keys = [...(await published(store)).keys()].sort();
    return keys.join() === [peerKey('n1', mine[0]!.id), peerKey('n2', added.id)].join();
  });
  // Keep-alives hold the records past the lease's TTL...
  await new Promise((r) => setTimeout(r, 1600));
  assert.equal((await published(store)).size, 2);
  // ...and without them (kill -9), they go with the lease.
  m.close();
  const t0 = Date.now();
  await until('the lease to expire', async () => (await published(store)).size === 0, 3000);
  assert.ok(Date.now() - t0 <= 2000, 'gone within the host TTL');
  assert.equal(await store.get(memberKey('h1')), undefined);
});

test('a restarted member re-adopts its records with no delete event; a lost lease is replaced', async (t) => {
  const mem = createMemoryStore();
  t.after(() => mem.close());
  const { store, leases } = tapped(mem);
  const eps = [endpoint('h1', 'n1', 2), endpoint('h1', 'n1', 3)];
  for (const ep of eps) await putEp(store, ep);
  const first = new Membership({ store, hostId: 'h1', advertise: '192.0.2.1', ttlSeconds: 3, log });
  await first.start();
  first.close(); // as if killed: its lease (3 - 1 s) is still alive for up to 2 s
  // A record the previous run published for an endpoint that went while it was down.
  const gone = endpoint('h1', 'n1', 9);
  await store.put(
    peerKey('n1', gone.id),
    JSON.stringify({ host: 'h1', networkId: 'n1', endpointId: gone.id, ip: gone.ip, mac: gone.mac }),
  );
  const events: WatchEvent[] = [];
  const w = await store.watch(PEERS, (msg) => {
    if (msg.kind === 'events') events.push(...msg.events);
  });
  t.after(() => w.close());
  const second = new Membership({ store, hostId: 'h1', advertise: '192.0.2.1', ttlSeconds: 3, log });
  t.after(() => second.close());
  await second.start();
  assert.notEqual(second.leaseId, first.leaseId);
  const pub = await published(store);
  assert.deepEqual(
    [...pub.keys()].sort(),
    eps.map((e) => peerKey('n1', e.id)),
  );
  for (const p of pub.values()) assert.equal(p.lease, second.leaseId, 'moved to the new lease');
  // The old lease expires with nothing left on it: the records stay.
  await new Promise((r) => setTimeout(r, 2600));
  assert.equal((await published(store)).size, 2);
  assert.deepEqual(
    events.filter((e) => e.type === 'delete').map((e) => e.kv.key),
    [peerKey('n1', gone.id)],
    'the only delete is the stale record; other hosts saw the live ones only re-put, unchanged',
  );
  // The lease disappears behind its back (etcd lost it, e.g. down longer than the TTL and
  // restored without it): the records go with it, and the next beat joins again.
  const lost = second.leaseId!;
  await leases.get(lost)!.revoke();
  assert.equal((await published(store)).size, 0);
  await until('a new lease and every record back on it', async () => {
    const p = await published(store);
    return (
      second.leaseId !== lost && p.size === 2 && [...p.values()].every((r) => r.lease === second.leaseId)
    );
  });
  assert.equal((await store.get(memberKey('h1')))?.lease, second.leaseId);
});

// ---- the peer table ------------------------------------------------------------------------------

class FakePorts implements OverlayPorts {
  readonly kind = 'fake';
  readonly encrypts = true;
  readonly tables = new Map<string, RemoteEndpoint[]>();
  calls = 0;
  async ensure() {}
  async remove() {}
  async setRemotes(o: PortRef, remotes: RemoteEndpoint[]) {
    this.calls++;
    this.tables.set(o.network, remotes);
  }
  async fdb() {
    return [];
  }
  async peers() {
    return [];
  }
  async stats(o: PortRef) {
    return { network: o.network, vni: o.vni, counters: {} };
  }
  async sweep() {}
  async close() {}
}

/** The memory store, but the test holds every watch callback (to inject a resync) and lease handle. */
function tapped(store: Store) {
  const taps: ((m: WatchMessage) => void)[] = [];
  const leases = new Map<number, Lease>();
  const s: Store = {
    get: (k) => store.get(k),
    list: (p) => store.list(p),
    put: (k, v, o) => store.put(k, v, o),
    delete: (k) => store.delete(k),
    txn: (x) => store.txn(x),
    watch: (p, cb, o) => {
      taps.push(cb);
      return store.watch(p, cb, o);
    },
    grantLease: async (o) => {
      const l = await store.grantLease(o);
      leases.set(l.id, l);
      return l;
    },
    close: () => store.close(),
  };
  return { store: s, taps, leases };
}

const peer = (host: string, net: string, n: number, vtep = `192.0.2.${host.slice(1)}`): PeerRecord => ({
  host,
  networkId: net,
  endpointId: `e${host}${n}`,
  ip: `10.1.0.${n}`,
  mac: `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`,
  vtep,
});

test('peer table: remote records applied per network; a resync snapshot leaves nothing stale', async (t) => {
  const mem = createMemoryStore();
  t.after(() => mem.close());
  const { store, taps } = tapped(mem);
  const ports = new FakePorts();
  const put = (p: PeerRecord) => store.put(peerKey(p.networkId, p.endpointId), JSON.stringify(p));
  await put(peer('h2', 'n1', 2));
  await put(peer('h1', 'n1', 3)); // this host's own: never a remote
  await put(peer('h3', 'n2', 4)); // a network without a sandbox here: skipped
  const table = new PeerTable({
    store,
    ports,
    hostId: 'h1',
    log,
    localPort: async (id) => (id === 'n1' ? { network: 'n1', vni: 4096, sandbox: 'sb' } : undefined),
  });
  t.after(() => table.close());
  await table.start();
  assert.deepEqual(ports.tables.get('n1'), [
    { ip: '10.1.0.2', mac: peer('h2', 'n1', 2).mac, vtep: '192.0.2.2' },
  ]);
  assert.equal(ports.tables.has('n2'), false);
  await put(peer('h3', 'n1', 5));
  await until('the new remote', async () => ports.tables.get('n1')?.length === 2);
  // An unchanged re-put (a restarted host re-adopting) does not reprogram anything.
  const calls = ports.calls;
  await put(peer('h3', 'n1', 5));
  await table.idle();
  assert.equal(ports.calls, calls);
  // A resync whose snapshot lacks h2's endpoint (deleted while the watch was broken) and has a
  // new one of h3: the applied table is exactly the snapshot's.
  const snap = [peer('h3', 'n1', 5), peer('h3', 'n1', 6)];
  taps[0]!({
    kind: 'resync',
    revision: 1_000_000,
    kvs: snap.map((p, i) => ({
      key: peerKey(p.networkId, p.endpointId),
      value: JSON.stringify(p),
      createRevision: i + 1,
      modRevision: i + 1,
      version: 1,
      lease: 0,
    })),
  });
  await table.idle();
  assert.deepEqual(
    ports.tables.get('n1'),
    snap.map((p) => ({ ip: p.ip, mac: p.mac, vtep: p.vtep })),
  );
  assert.deepEqual(
    table.remotes('n1').map((r) => r.ip),
    ['10.1.0.5', '10.1.0.6'],
  );
});

test('membership publishes many endpoints in few transactions (100 per batch)', async (t) => {
  const mem = createMemoryStore();
  t.after(() => mem.close());
  for (let i = 0; i < 250; i++) await putEp(mem, { ...endpoint('h1', `n${i % 5}`, 2), id: `ep${i}` });
  let txns = 0;
  const store: Store = {
    ...tapped(mem).store,
    txn: (x) => {
      txns++;
      return mem.txn(x);
    },
  };
  const m = new Membership({ store, hostId: 'h1', ttlSeconds: 10, log });
  t.after(() => m.close());
  await m.start();
  assert.equal((await published(mem)).size, 250);
  assert.equal(txns, 3);
});
