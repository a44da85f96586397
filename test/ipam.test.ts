// IPAM and VNI allocation: parsing, every bad input's code (with the state left unchanged),
// default-pool carving, overlap, exhaustion, and concurrent allocations that never collide.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isVxError } from '../src/errors.js';
import { contains, formatIp, macFromIp, overlaps, parseCidr, parseIp } from '../src/ipam/cidr.js';
import { Ipam } from '../src/ipam/pool.js';
import { VniAllocator } from '../src/ipam/vni.js';
import { createMemoryStore } from '../src/store/memory.js';
import { type Store, transact } from '../src/store/store.js';

const code = (c: string) => (e: unknown) => isVxError(e) && e.code === c;

/** Asserts `fn` fails with `c` and the store is exactly as before. */
async function refused(store: Store, fn: () => Promise<unknown>, c: string, label = c): Promise<void> {
  const before = await store.list('');
  await assert.rejects(async () => fn(), code(c), label);
  assert.deepEqual(await store.list(''), before, `${label}: state unchanged`);
}

test('IPv4 and CIDR parsing is strict', () => {
  assert.equal(parseIp('10.0.0.1'), 0x0a000001);
  assert.equal(formatIp(0xffffffff), '255.255.255.255');
  for (const bad of ['10.0.0', '10.0.0.256', '010.0.0.1', '1.2.3.4 ', '', '1..2.3', 'a.b.c.d', 5]) {
    assert.throws(() => parseIp(bad), code('ERR_BAD_IP'), String(bad));
  }
  assert.deepEqual(parseCidr('10.1.0.0/16'), { network: 0x0a010000, prefix: 16 });
  assert.deepEqual(parseCidr('0.0.0.0/0'), { network: 0, prefix: 0 });
  for (const bad of [
    '10.0.0.0/33',
    '10.0.0.1/24',
    '10.0.0.0',
    '10.0.0.0/',
    '10.0.0.0/024',
    '10.0.0/8',
    null,
  ]) {
    assert.throws(
      () => parseCidr(bad),
      (e) => isVxError(e) && /ERR_BAD_(CIDR|IP)/.test(e.code),
      String(bad),
    );
  }
  assert.equal(macFromIp('10.0.0.2'), '02:42:0a:00:00:02');
  assert.equal(macFromIp('172.18.255.254'), '02:42:ac:12:ff:fe');
});

test('overlap and containment agree with a brute-force reference', () => {
  let seed = 7;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  for (let i = 0; i < 2000; i++) {
    // Small prefixes inside 10.0.0.0/24 so every address can be enumerated.
    const mk = () => {
      const prefix = 24 + rand(9);
      const size = 2 ** (32 - prefix);
      return { network: 0x0a000000 + Math.floor(rand(256) / size) * size, prefix };
    };
    const a = mk();
    const b = mk();
    const addrs = (c: { network: number; prefix: number }) =>
      Array.from({ length: 2 ** (32 - c.prefix) }, (_, k) => c.network + k);
    const inA = new Set(addrs(a));
    assert.equal(
      overlaps(a, b),
      addrs(b).some((x) => inA.has(x)),
    );
    const ip = 0x0a000000 + rand(256);
    assert.equal(contains(a, ip), inA.has(ip));
  }
});

test('subnets: default-pool carving skips what is taken', async () => {
  const store = createMemoryStore();
  const ipam = new Ipam({ store });
  const a = await ipam.requestSubnet({ owner: 'n1' });
  assert.deepEqual(a, { subnet: '10.0.0.0/24', gateway: '10.0.0.1', owner: 'n1' });
  await ipam.requestSubnet({ owner: 'n2', subnet: '10.0.1.0/24' });
  await ipam.requestSubnet({
    owner: 'n3',
    subnet: '10.0.2.0/23',
    gateway: '10.0.3.254',
    ipRange: '10.0.3.0/25',
  });
  assert.equal((await ipam.requestSubnet({ owner: 'n4' })).subnet, '10.0.4.0/24');
  await ipam.releaseSubnet('10.0.1.0/24');
  await ipam.releaseSubnet('10.0.1.0/24');
  assert.equal((await ipam.requestSubnet({ owner: 'n5' })).subnet, '10.0.1.0/24');
  assert.deepEqual((await ipam.getSubnet('10.0.2.0/23'))?.ipRange, '10.0.3.0/25');
  assert.equal((await ipam.listSubnets()).length, 4);
});

test('subnets: bad requests, overlap and pool exhaustion return codes and change nothing', async () => {
  const store = createMemoryStore();
  const ipam = new Ipam({ store, defaultPool: '192.168.0.0/22' });
  await ipam.requestSubnet({ owner: 'a', subnet: '192.168.0.0/24' });
  const cases: [Parameters<Ipam['requestSubnet']>[0], string][] = [
    [{ owner: 'x', subnet: '10.0.0.0/33' }, 'ERR_BAD_CIDR'],
    [{ owner: 'x', subnet: '10.0.0.0/31' }, 'ERR_BAD_CIDR'],
    [{ owner: 'x', subnet: '10.0.0.0/24', gateway: '10.0.0.300' }, 'ERR_BAD_IP'],
    [{ owner: 'x', subnet: '10.0.0.0/24', gateway: '10.0.1.1' }, 'ERR_IP_OUT_OF_RANGE'],
    [{ owner: 'x', subnet: '10.0.0.0/24', gateway: '10.0.0.255' }, 'ERR_IP_RESERVED'],
    [{ owner: 'x', subnet: '10.0.0.0/24', ipRange: '10.0.1.0/25' }, 'ERR_IP_OUT_OF_RANGE'],
    [{ owner: 'x', gateway: '10.0.0.1' }, 'ERR_IPAM_NEEDS_SUBNET'],
    [{ owner: '', subnet: '10.0.0.0/24' }, 'ERR_BAD_OWNER'],
    [{ owner: 'x', subnet: '192.168.0.128/25' }, 'ERR_SUBNET_OVERLAP'],
    [{ owner: 'x', subnet: '192.0.0.0/8' }, 'ERR_SUBNET_OVERLAP'],
  ];
  for (const [req, c] of cases)
    await refused(store, () => ipam.requestSubnet(req), c, `${c} ${JSON.stringify(req)}`);
  for (let i = 0; i < 3; i++) await ipam.requestSubnet({ owner: `auto${i}` });
  await refused(store, () => ipam.requestSubnet({ owner: 'more' }), 'ERR_POOL_EXHAUSTED');
});

test('addresses: dynamic, static --ip checks, ip-range, release, subnet full', async () => {
  const store = createMemoryStore();
  const ipam = new Ipam({ store });
  await ipam.requestSubnet({ owner: 'n', subnet: '10.9.0.0/29', gateway: '10.9.0.6' });
  const first = await ipam.requestIp('10.9.0.0/29', { owner: 'e1' });
  assert.deepEqual(first, { ip: '10.9.0.1', address: '10.9.0.1/29', mac: '02:42:0a:09:00:01' });
  assert.equal((await ipam.requestIp('10.9.0.0/29', { owner: 'e2', ip: '10.9.0.4' })).ip, '10.9.0.4');
  const bad: [string, string][] = [
    ['10.9.0.4', 'ERR_IP_IN_USE'],
    ['10.9.0.9', 'ERR_IP_OUT_OF_RANGE'],
    ['10.9.0.0', 'ERR_IP_RESERVED'],
    ['10.9.0.6', 'ERR_IP_RESERVED'],
    ['10.9.0.7', 'ERR_IP_RESERVED'],
    ['10.9.0.x', 'ERR_BAD_IP'],
  ];
  for (const [ip, c] of bad)
    await refused(store, () => ipam.requestIp('10.9.0.0/29', { owner: 'z', ip }), c, `${c} ${ip}`);
  await refused(store, () => ipam.requestIp('10.8.0.0/24', { owner: 'z' }), 'ERR_SUBNET_NOT_FOUND');
  const rest = [];
  for (let i = 0; i < 3; i++) rest.push((await ipam.requestIp('10.9.0.0/29', { owner: `d${i}` })).ip);
  assert.deepEqual(rest, ['10.9.0.2', '10.9.0.3', '10.9.0.5']);
  await refused(store, () => ipam.requestIp('10.9.0.0/29', { owner: 'full' }), 'ERR_SUBNET_FULL');
  await ipam.releaseIp('10.9.0.0/29', '10.9.0.3');
  await ipam.releaseIp('10.9.0.0/29', '10.9.0.3');
  assert.equal((await ipam.requestIp('10.9.0.0/29', { owner: 'again' })).ip, '10.9.0.3');
  assert.deepEqual((await ipam.listIps('10.9.0.0/29')).find((e) => e.ip === '10.9.0.3')?.owner, 'again');

  await ipam.requestSubnet({ owner: 'r', subnet: '10.7.0.0/24', ipRange: '10.7.0.128/30' });
  const ranged = [];
  for (let i = 0; i < 4; i++) ranged.push((await ipam.requestIp('10.7.0.0/24', { owner: `r${i}` })).ip);
  assert.deepEqual(ranged, ['10.7.0.128', '10.7.0.129', '10.7.0.130', '10.7.0.131']);
  await refused(store, () => ipam.requestIp('10.7.0.0/24', { owner: 'r4' }), 'ERR_SUBNET_FULL');
  assert.equal(
    (await ipam.requestIp('10.7.0.0/24', { owner: 's', ip: '10.7.0.9' })).ip,
    '10.7.0.9',
    '--ip outside ip-range',
  );
  await ipam.releaseSubnet('10.7.0.0/24');
  assert.deepEqual(await ipam.listIps('10.7.0.0/24'), [], 'release frees the addresses too');
});

test('VNIs: lowest free, pinned checks, exhaustion', async () => {
  const store = createMemoryStore();
  const vnis = new VniAllocator({ store });
  assert.equal(await vnis.allocate({ owner: 'a' }), 4096);
  assert.equal(await vnis.allocate({ owner: 'b', vni: '4097' }), 4097);
  assert.equal(await vnis.allocate({ owner: 'c', vni: 16777215 }), 16777215);
  assert.equal(await vnis.allocate({ owner: 'd' }), 4098);
  for (const [vni, c] of [
    [4097, 'ERR_VNI_IN_USE'],
    [4095, 'ERR_VNI_OUT_OF_RANGE'],
    [16777216, 'ERR_VNI_OUT_OF_RANGE'],
    [5000.5, 'ERR_VNI_OUT_OF_RANGE'],
    ['0x2000', 'ERR_VNI_OUT_OF_RANGE'],
    [-1, 'ERR_VNI_OUT_OF_RANGE'],
  ] as const) {
    await refused(store, () => vnis.allocate({ owner: 'x', vni }), c, `${c} ${vni}`);
  }
  await vnis.release(4096);
  await vnis.release(4096);
  assert.equal(await vnis.allocate({ owner: 'e' }), 4096);
  const narrow = new VniAllocator({ store, prefix: '/t/vni/', first: 5000, last: 5001 });
  await narrow.allocate({ owner: 'x' });
  await narrow.allocate({ owner: 'y' });
  await refused(store, () => narrow.allocate({ owner: 'z' }), 'ERR_VNI_EXHAUSTED');
});

test('concurrent allocations through one store never collide', async () => {
  const store = createMemoryStore();
  // Three "hosts": separate allocator instances over one store, as three daemons over etcd.
  const hosts = [0, 1, 2].map(() => ({ ipam: new Ipam({ store }), vnis: new VniAllocator({ store }) }));
  const nets = await Promise.all(
    Array.from({ length: 20 }, (_, i) => {
      const h = hosts[i % 3]!;
      return Promise.all([h.ipam.requestSubnet({ owner: `net${i}` }), h.vnis.allocate({ owner: `net${i}` })]);
    }),
  );
  const subnets = nets.map(([s]) => parseCidr(s.subnet));
  for (let i = 0; i < subnets.length; i++) {
    for (let j = i + 1; j < subnets.length; j++)
      assert.ok(!overlaps(subnets[i]!, subnets[j]!), `${i} vs ${j}`);
  }
  assert.equal(new Set(nets.map(([, v]) => v)).size, 20, 'distinct VNIs');

  // Explicit overlapping requests racing: exactly one wins, the others get ERR_SUBNET_OVERLAP.
  const racing = await Promise.allSettled(
    ['172.20.0.0/16', '172.20.5.0/24', '172.20.0.0/20', '172.16.0.0/12'].map((subnet, i) =>
      hosts[i % 3]!.ipam.requestSubnet({ owner: `r${i}`, subnet }),
    ),
  );
  assert.equal(racing.filter((r) => r.status === 'fulfilled').length, 1);
  for (const r of racing) if (r.status === 'rejected') assert.ok(code('ERR_SUBNET_OVERLAP')(r.reason));

  const ips = await Promise.all(
    Array.from({ length: 60 }, (_, i) =>
      hosts[i % 3]!.ipam.requestIp(nets[0]![0].subnet, { owner: `e${i}` }),
    ),
  );
  assert.equal(new Set(ips.map((l) => l.ip)).size, 60, 'distinct addresses');
  const ip = formatIp(parseCidr(nets[1]![0].subnet).network + 77);
  const pinned = await Promise.allSettled(
    [0, 1, 2].map((i) => hosts[i]!.ipam.requestIp(nets[1]![0].subnet, { owner: `p${i}`, ip })),
  );
  assert.equal(pinned.filter((r) => r.status === 'fulfilled').length, 1, 'one of three racing --ip wins');
});

test('network create as one transaction: subnet + VNI + record, all or nothing, concurrently', async () => {
  const store = createMemoryStore();
  const hosts = [0, 1, 2].map(() => ({ ipam: new Ipam({ store }), vnis: new VniAllocator({ store }) }));
  const create = (h: (typeof hosts)[number], name: string, subnet?: string) =>
    transact(
      store,
      async () => {
        const s = await h.ipam.planSubnet({ owner: name, subnet });
        const v = await h.vnis.plan({ owner: name });
        const key = `/vxnet/networks/${name}`;
        if (await store.get(key)) throw new Error(`network ${name} exists`);
        return {
          value: { subnet: s.value.subnet, vni: v.value },
          compare: [...s.compare, ...v.compare, { key, absent: true }],
          success: [...s.success, ...v.success, { type: 'put', key, value: name }],
        };
      },
      { what: 'network create' },
    );
  const made = await Promise.all(Array.from({ length: 20 }, (_, i) => create(hosts[i % 3]!, `net${i}`)));
  assert.equal(new Set(made.map((m) => m.subnet)).size, 20, 'distinct subnets');
  assert.equal(new Set(made.map((m) => m.vni)).size, 20, 'distinct VNIs');
  const before = await store.list('');
  await assert.rejects(create(hosts[0]!, 'net0'), /exists/);
  await assert.rejects(create(hosts[1]!, 'other', made[0]!.subnet), code('ERR_SUBNET_OVERLAP'));
  assert.deepEqual(await store.list(''), before, 'a refused create leaves no subnet or VNI behind');

  // An endpoint: its address and its record in one transaction.
  const join = (h: (typeof hosts)[number], name: string, ip?: string) =>
    transact(
      store,
      async () => {
        const a = await h.ipam.planIp(made[0]!.subnet, { owner: name, ip });
        const key = `/vxnet/endpoints/${name}`;
        const success = [...a.success, { type: 'put' as const, key, value: a.value.ip }];
        return { value: a.value, compare: [...a.compare, { key, absent: true }], success };
      },
      { what: 'endpoint create' },
    );
  const eps = await Promise.all(Array.from({ length: 12 }, (_, i) => join(hosts[i % 3]!, `ep${i}`)));
  assert.equal(new Set(eps.map((e) => e.ip)).size, 12, 'distinct endpoint addresses');
  const taken = await store.list('');
  await assert.rejects(join(hosts[0]!, 'late', eps[0]!.ip), code('ERR_IP_IN_USE'));
  assert.deepEqual(await store.list(''), taken);
});
