// kill -9 of the daemon in the middle of `run` (at each step, by a crash hook, and at random
// instants), then a restart: the state must be consistent -- every container the API lists is
// fully plumbed, nothing it does not list is left in the kernel (namespace, link, process), and
// every allocated address has an owner. Also: SIGTERM shuts down cleanly and a restart adopts a
// running container without disturbing it.

import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { listAddrs } from '../src/kernel/addr.js';
import { ipJson } from '../src/kernel/exec.js';
import { getLink, listLinks } from '../src/kernel/link.js';
import { netnsPids } from '../src/kernel/netns.js';
import { openEmbeddedStore } from '../src/store/embedded.js';
import { createHost, pings, root, type TestHost } from './daemon-host.js';

const skip = root ? false : 'needs root (network namespaces)';
let h: TestHost;

interface Ct {
  Id: string;
  Name: string;
  Netns: string;
  State: { Status: string; Pid: number };
  NetworkSettings: {
    Networks: Record<
      string,
      { IPAddress: string; IPPrefixLen: number; Interface: string; EndpointID: string }
    >;
    Gateway: { IPAddress: string; HostInterface: string } | null;
  };
}

before(async () => {
  if (!root) return;
  h = await createHost();
  await h.start();
  await h.client.call('POST', '/networks/create', { Name: 'n', Driver: 'overlay' });
});

after(async () => {
  if (h) await h.destroy();
});

const runBody = (cmd: string[]) => ({
  Cmd: cmd,
  HostConfig: { NetworkMode: 'n' },
  NetworkingConfig: { EndpointsConfig: { n: {} } },
});

async function runContainer(name: string): Promise<void> {
  await h.client.call('POST', `/containers/create?name=${name}`, runBody(['sleep', '300']));
  await h.client.call('POST', `/containers/${name}/start`);
}

async function restart(env: Record<string, string> = {}): Promise<void> {
  if (h.daemon && h.daemon.exitCode === null && h.daemon.signalCode === null) {
    h.daemon.kill('SIGKILL');
    await h.exited();
  }
  await h.start(env);
}

/** The TAP devices in a namespace (vxnet's VXLAN ports). */
async function taps(netns: string): Promise<{ name: string; master?: string; mtu: number }[]> {
  const links = await ipJson<{
    ifname: string;
    master?: string;
    mtu: number;
    linkinfo?: { info_kind: string };
  }>(['-d', 'link', 'show'], { netns, action: 'links' });
  return links
    .filter((l) => l.linkinfo?.info_kind === 'tun')
    .map((l) => ({ name: l.ifname, ...(l.master ? { master: l.master } : {}), mtu: l.mtu }));
}

/** Everything the API lists is plumbed; nothing else of this host is in the kernel. */
async function assertConsistent(): Promise<Ct[]> {
  const cts = await h.client.call<Ct[]>('GET', '/containers/json');
  const expected = new Set<string>();
  for (const c of cts) {
    assert.ok(['created', 'running', 'exited'].includes(c.State.Status), `${c.Name}: ${c.State.Status}`);
    expected.add(c.Netns);
    const ep = c.NetworkSettings.Networks.n!;
    assert.deepEqual(await listAddrs(ep.Interface, { netns: c.Netns }), [
      `${ep.IPAddress}/${ep.IPPrefixLen}`,
    ]);
    assert.ok(c.NetworkSettings.Gateway, `${c.Name} has eth1`);
    assert.ok(await getLink(c.NetworkSettings.Gateway.HostInterface, { netns: h.ns }));
    const pids = await netnsPids(c.Netns);
    if (c.State.Status === 'running')
      assert.deepEqual(pids, [c.State.Pid], `${c.Name}: only its process runs`);
    else assert.deepEqual(pids, [], `${c.Name} (${c.State.Status}) has no process left`);
  }
  const spaces = await h.namespaces();
  const sandboxes = spaces.filter((n) => n.startsWith('vxsb-'));
  assert.equal(sandboxes.length, cts.length > 0 ? 1 : 0, `sandboxes: ${sandboxes.join(' ')}`);
  for (const sb of sandboxes) {
    assert.deepEqual(await netnsPids(sb), []);
    // The VXLAN port was made again: one TAP, on br0, with br0's MTU.
    assert.deepEqual(await taps(sb), [{ name: 'vxtap0', master: 'br0', mtu: 1450 }], sb);
  }
  assert.deepEqual(
    spaces.filter((n) => n.startsWith('vxct-')),
    [...expected].sort(),
    'container namespaces = the containers listed',
  );
  const ports = (await listLinks({ netns: h.ns })).map((l) => l.name).filter((n) => /^vg|^vxt-/.test(n));
  const owned = cts.map((c) => c.NetworkSettings.Gateway?.HostInterface);
  assert.deepEqual(ports.sort(), owned.sort(), 'gateway ports = the containers listed');
  const logs = readdirSync(join(h.stateDir, 'containers')).sort();
  assert.ok(
    logs.every((f) => cts.some((c) => `${c.Id}.log` === f)),
    `output files of unknown containers: ${logs}`,
  );
  return cts;
}

const POINTS = ['run:recorded', 'run:netns', 'run:plumbed', 'run:spawned'];

test('kill -9 at each step of run, restart: consistent, nothing leaked', { skip }, async () => {
  await runContainer('keep');
  for (const point of POINTS) {
    await restart({ VXNET_CRASH_AT: point });
    const name = `x${POINTS.indexOf(point)}`;
    await assert.rejects(runContainer(name));
    assert.equal(await h.exited(), 'SIGKILL');
    // The TAP went with the daemon's fds: nothing of the port outlives the process.
    const sandbox = (await h.namespaces()).find((n) => n.startsWith('vxsb-'))!;
    assert.deepEqual(await taps(sandbox), [], 'no TAP left by the killed daemon');
    await h.start();
    const cts = await assertConsistent();
    const names = cts.map((c) => c.Name);
    assert.ok(names.includes('keep'));
    // Unacknowledged creates are undone; a crash after create (inside start) leaves it 'created'.
    if (point === 'run:spawned') assert.equal(cts.find((c) => c.Name === name)?.State.Status, 'created');
    else assert.ok(!names.includes(name), `${name} was never acknowledged`);
    const keep = cts.find((c) => c.Name === 'keep')!;
    assert.equal(keep.State.Status, 'running', 'a running container survives daemon crashes');
  }
});

test('kill -9 at random instants during run, restart: consistent', { skip }, async () => {
  for (const [i, delay] of [40, 120, 250, 400].entries()) {
    const pending = runContainer(`r${i}`).catch(() => undefined);
    await new Promise((r) => setTimeout(r, delay));
    h.daemon!.kill('SIGKILL');
    await h.exited();
    await pending;
    await h.start();
    await assertConsistent();
  }
});

test('SIGTERM stops cleanly; a restart adopts running containers; no address without an owner', {
  skip,
}, async () => {
  const keep = await h.client.call<Ct>('GET', '/containers/keep/json');
  await runContainer('peer');
  const peer = await h.client.call<Ct>('GET', '/containers/peer/json');
  h.daemon!.kill('SIGTERM');
  assert.equal(await h.exited(), 0);
  assert.equal(existsSync(h.socket), false, 'socket removed');
  // Every address and VNI in the store has an owner record.
  const store = await openEmbeddedStore({ dir: join(h.stateDir, 'store') });
  try {
    const owners = new Set<string>();
    for (const kv of (await store.list('/vxnet/endpoints/')).kvs) owners.add(JSON.parse(kv.value).id);
    for (const kv of (await store.list('/vxnet/containers/')).kvs) owners.add(JSON.parse(kv.value).id);
    const ips = [...(await store.list('/vxnet/ipam/ips/')).kvs, ...(await store.list('/vxnet/hosts/')).kvs];
    for (const kv of ips.filter((x) => x.key.includes('/ips/')))
      assert.ok(owners.has(kv.value), `${kv.key} leaked`);
  } finally {
    await store.close();
  }
  assert.ok(
    await pings(keep.Netns, peer.NetworkSettings.Networks.n!.IPAddress),
    'datapath works while stopped',
  );
  await h.start();
  const again = await h.client.call<Ct>('GET', '/containers/keep/json');
  assert.equal(again.State.Status, 'running');
  assert.equal(again.State.Pid, keep.State.Pid);
  await assertConsistent();
  for (const c of await h.client.call<Ct[]>('GET', '/containers/json'))
    await h.client.call('DELETE', `/containers/${c.Name}?force=1`);
  await h.client.call('DELETE', '/networks/n');
  assert.deepEqual(await h.namespaces(), []);
  assert.deepEqual(readdirSync(join(h.stateDir, 'containers')), [], 'output files go with their containers');
});
