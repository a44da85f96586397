// Concurrent mutations inside one daemon (engine.ts runs different containers' create, start and
// rm at the same time): on the embedded store and on a real etcd, many `run`s at once get distinct
// addresses and MACs and all reach each other; `network rm` racing `run`s ends consistent (either
// the network is gone and no run made anything, or it stays and every run that succeeded is
// plumbed); removing them all at once leaves no namespace, sandbox or gateway bridge.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isVxError } from '../src/errors.js';
import { getLink, listLinks } from '../src/kernel/link.js';
import { netnsExists } from '../src/kernel/netns.js';
import { type EtcdServer, startEtcd } from '../src/lab/etcd.js';
import { createHost, pings, root, type TestHost } from './daemon-host.js';

const skip = root ? false : 'needs root (network namespaces)';
const N = 12;

interface Ct {
  Name: string;
  Netns: string;
  State: { Status: string };
  NetworkSettings: { Networks: Record<string, { IPAddress: string; MacAddress: string }> };
}

async function run(h: TestHost, name: string, network: string): Promise<Ct> {
  await h.client.call('POST', `/containers/create?name=${name}`, {
    Cmd: ['sleep', '300'],
    HostConfig: { NetworkMode: network },
  });
  await h.client.call('POST', `/containers/${name}/start`);
  return h.client.call<Ct>('GET', `/containers/${name}/json`);
}

/** N runs at once; distinct IPs and MACs; every container reaches the first and the first reaches all. */
async function concurrentRuns(h: TestHost, network: string, internal: boolean): Promise<void> {
  await h.client.call('POST', '/networks/create', {
    Name: network,
    Internal: internal,
    IPAM: { Config: [{ Subnet: '10.123.0.0/24' }] },
  });
  const names = Array.from({ length: N }, (_, i) => `c${i}`);
  const cts = await Promise.all(names.map((n) => run(h, n, network)));
  const ips = cts.map((c) => c.NetworkSettings.Networks[network]!.IPAddress);
  const macs = cts.map((c) => c.NetworkSettings.Networks[network]!.MacAddress);
  assert.equal(new Set(ips).size, N, `distinct addresses: ${ips.join(' ')}`);
  assert.equal(new Set(macs).size, N, `distinct MACs: ${macs.join(' ')}`);
  for (const c of cts) assert.equal(c.State.Status, 'running');
  // What the kernel holds agrees with the records: eth0 of each carries its MAC.
  for (const [i, c] of cts.entries())
    assert.equal((await getLink('eth0', { netns: c.Netns }))?.mac, macs[i], `${c.Name}'s eth0`);
  // One sandbox for the network, one port on its bridge per container.
  const sandboxes = (await h.namespaces()).filter((n) => n.startsWith('vxsb-'));
  assert.equal(sandboxes.length, 1, `one sandbox: ${sandboxes.join(' ')}`);
  const ports = await listLinks({ netns: sandboxes[0]!, master: 'br0' });
  assert.equal(ports.filter((l) => l.name.startsWith('vp')).length, N);
  if (!internal) {
    const gw = await listLinks({ netns: h.ns, master: 'vxnet_gwbridge' });
    assert.equal(gw.length, N, 'one gateway port per container');
  }
  const pairs = cts.slice(1).flatMap((c, i) => [
    [cts[0]!.Netns, ips[i + 1]!],
    [c.Netns, ips[0]!],
  ]);
  const results = await Promise.all(pairs.map(([ns, ip]) => pings(ns!, ip!)));
  assert.deepEqual(
    pairs.filter((_, i) => !results[i]).map(([ns, ip]) => `${ns} -> ${ip}`),
    [],
    'every pair pings',
  );
  // All removed at once: nothing of this host left.
  await Promise.all(names.map((n) => h.client.call('DELETE', `/containers/${n}?force=1`)));
  assert.deepEqual(await h.namespaces(), []);
  assert.equal(await getLink('vxnet_gwbridge', { netns: h.ns }), undefined);
  await h.client.call('DELETE', `/networks/${network}`);
  assert.deepEqual(await h.client.call('GET', '/containers/json?all=1'), []);
}

test('concurrent runs on one daemon (embedded store): distinct addresses, all ping, all removed', {
  skip,
}, async (t) => {
  const h = await createHost();
  t.after(() => h.destroy());
  await h.start();
  await concurrentRuns(h, 'par', false);
});

test('concurrent runs on one daemon (etcd): distinct addresses, all ping, all removed', {
  skip,
}, async (t) => {
  const h = await createHost();
  let etcd: EtcdServer | undefined;
  t.after(async () => {
    await h.destroy();
    await etcd?.stop();
  });
  // etcd on the simulated host's own loopback, so the daemon inside it reaches it.
  etcd = await startEtcd({
    netns: h.ns,
    clientUrl: 'http://127.0.0.1:23790',
    peerUrl: 'http://127.0.0.1:23800',
  });
  await h.start(
    {},
    { args: ['--cluster-store', 'etcd://127.0.0.1:23790', '--cluster-advertise', '192.168.200.1'] },
  );
  await concurrentRuns(h, 'parx', true);
});

test('network rm racing runs ends consistent', { skip }, async (t) => {
  const h = await createHost();
  t.after(() => h.destroy());
  await h.start();
  for (let round = 0; round < 3; round++) {
    const network = `race${round}`;
    await h.client.call('POST', '/networks/create', { Name: network, Internal: true });
    const names = Array.from({ length: 6 }, (_, i) => `r${round}x${i}`);
    // Round 0 sends the rm just before the runs, the others just after them.
    const remove = () =>
      h.client.call('DELETE', `/networks/${network}`).then(
        () => 'removed',
        (e: unknown) => {
          assert.ok(isVxError(e, 'ERR_NETWORK_IN_USE'), `rm failed with ${String(e)}`);
          return 'in use';
        },
      );
    const rm0 = round === 0 ? remove() : undefined;
    const runs = Promise.allSettled(names.map((n) => run(h, n, network)));
    if (round === 2) await new Promise((r) => setTimeout(r, 30));
    const rmd = await (rm0 ?? remove());
    const done = await runs;
    const made = done.flatMap((d) => (d.status === 'fulfilled' ? [d.value] : []));
    for (const d of done)
      if (d.status === 'rejected')
        assert.ok(isVxError(d.reason, 'ERR_NETWORK_NOT_FOUND'), `run failed with ${String(d.reason)}`);
    const listed = await h.client.call<{ Name: string }[]>('GET', '/containers/json?all=1');
    assert.deepEqual(
      listed.map((c) => c.Name.replace(/^\//, '')).sort(),
      made.map((c) => c.Name.replace(/^\//, '')).sort(),
      'records exist exactly for the runs that succeeded',
    );
    if (rmd === 'removed') assert.equal(made.length, 0, 'the network was removed under running containers');
    for (const c of made) {
      assert.ok(netnsExists(c.Netns));
      assert.ok(await getLink('eth0', { netns: c.Netns }), `${c.Name} is plumbed`);
    }
    if (made.length > 1) {
      const ip1 = made[1]!.NetworkSettings.Networks[network]!.IPAddress;
      assert.ok(await pings(made[0]!.Netns, ip1), 'the survivors reach each other');
    }
    await Promise.all(
      made.map((c) => h.client.call('DELETE', `/containers/${c.Name.replace(/^\//, '')}?force=1`)),
    );
    if (rmd === 'in use') await h.client.call('DELETE', `/networks/${network}`);
    assert.deepEqual(await h.namespaces(), [], `round ${round}: nothing left`);
    assert.deepEqual(await h.client.call('GET', '/networks'), []);
  }
});
