// Kernel plumbing against the real kernel: namespaces, veth pairs, bridges, addresses, routes,
// MTU detection, and the gateway bridge's NAT and isolation. Everything happens inside
// namespaces this test creates (random suffix) and removes afterwards, also on failure; the root
// namespace's links, routes and firewall are never touched.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { isVxError } from '../src/errors.js';
import { addAddr, deleteAddr, listAddrs } from '../src/kernel/addr.js';
import { attachPort, bridgePorts, ensureBridge } from '../src/kernel/bridge.js';
import { ip, ipBatch } from '../src/kernel/exec.js';
import { deleteLink, detectUnderlayMtu, ensureVeth, getLink, moveLink, setLink } from '../src/kernel/link.js';
import {
  ensureGatewayNat,
  GATEWAY_BRIDGE,
  gatewayNatInstalled,
  removeGatewayNat,
} from '../src/kernel/nat.js';
import {
  deleteNetns,
  ensureNetns,
  execInNetns,
  listNetns,
  netnsExists,
  netnsState,
  spawnInNetns,
} from '../src/kernel/netns.js';
import { listRoutes, replaceRoute, routeGet } from '../src/kernel/route.js';

const root = process.getuid?.() === 0;
const skip = root ? false : 'needs root (network namespaces)';
const tag = randomBytes(3).toString('hex');

interface Ctx {
  after: (fn: () => Promise<void>) => void;
}

/** Creates namespaces named vxt<tag>-<role> and removes them after the test, pass or fail. */
async function namespaces(t: Ctx, ...roles: string[]): Promise<string[]> {
  const names = roles.map((r) => `vxt${tag}-${r}`);
  t.after(async () => {
    for (const n of names) await deleteNetns(n, { killProcesses: true });
  });
  for (const n of names) await ensureNetns(n);
  return names;
}

async function pings(netns: string, dest: string): Promise<boolean> {
  try {
    await execInNetns(netns, 'ping', ['-c', '1', '-W', '1', '-q', dest]);
    return true;
  } catch {
    return false;
  }
}

const code = (c: string) => (e: unknown) => isVxError(e) && e.code === c;

test('netns: create twice, delete twice, list, exists, errors', { skip }, async (t) => {
  const [a, stale] = await namespaces(t, 'ns', 'stale');
  await ensureNetns(a!);
  assert.ok(netnsExists(a!));
  assert.ok((await listNetns()).includes(a!));
  assert.equal((await getLink('lo', { netns: a }))?.up, true, 'loopback is up');
  const batch = [
    ['link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1'],
    ['link', 'set', 'dev', 'd0', 'up'],
  ];
  await ipBatch(batch, { netns: a, action: 'make d0' });
  assert.equal((await getLink('d0', { netns: a }))?.up, true, 'one ip -batch ran both commands');
  await assert.rejects(ipBatch(batch, { netns: a, action: 'make d0 again' }), code('ERR_KERNEL'));
  assert.equal((await execInNetns(a!, 'cat', ['/proc/sys/net/ipv4/ip_forward'])).trim(), '0');
  // A name file whose mount lived in another, now gone, mount namespace is stale: replaced.
  await deleteNetns(stale!);
  await execInNetns(a!, 'ip', ['netns', 'add', stale!]);
  assert.equal(netnsState(stale!), 'stale');
  assert.ok((await listNetns({ stale: true })).includes(stale!));
  assert.equal((await listNetns()).includes(stale!), false);
  await ensureNetns(stale!);
  assert.equal(netnsState(stale!), 'live');
  const proc = spawnInNetns(a!, 'sleep', ['30']);
  await new Promise((r) => proc.once('spawn', r));
  const exited = new Promise((r) => proc.once('exit', r));
  await deleteNetns(a!, { killProcesses: true });
  await exited;
  await deleteNetns(a!);
  assert.equal(netnsExists(a!), false);
  await assert.rejects(ensureNetns('../etc'), code('ERR_BAD_NAME'));
  await assert.rejects(
    ip(['link'], { netns: `${a}-missing`, action: 'list links' }),
    code('ERR_NETNS_NOT_FOUND'),
  );
  await assert.rejects(getLink('nosuch0', { netns: `${a}x` }), code('ERR_NETNS_NOT_FOUND'));
});

test('veth pair between two namespaces: settings, addresses, ping, move, delete twice', {
  skip,
}, async (t) => {
  const [a, b] = await namespaces(t, 'va', 'vb');
  const pair = { name: 'a0', netns: a, peer: 'b0', peerNetns: b, mtu: 1400 };
  await ensureVeth(pair);
  await ensureVeth(pair);
  await setLink('a0', { netns: a, mac: '02:42:0A:63:00:01', up: true });
  await setLink('b0', { netns: b, up: true });
  await addAddr('a0', '10.99.0.1/24', { netns: a });
  await addAddr('a0', '10.99.0.1/24', { netns: a });
  await addAddr('b0', '10.99.0.2/24', { netns: b });
  assert.deepEqual(await listAddrs('a0', { netns: a }), ['10.99.0.1/24']);
  const info = await getLink('a0', { netns: a });
  assert.deepEqual([info?.kind, info?.mtu, info?.mac, info?.up], ['veth', 1400, '02:42:0a:63:00:01', true]);
  assert.ok(await pings(a!, '10.99.0.2'));
  await deleteAddr('a0', '10.99.0.1/24', { netns: a });
  await deleteAddr('a0', '10.99.0.1/24', { netns: a });
  assert.equal(await pings(a!, '10.99.0.2'), false, 'no address, no ping');

  await ensureVeth({ name: 'x0', peer: 'x1', netns: a });
  await moveLink('x1', { netns: a, to: b!, rename: 'eth1' });
  assert.equal((await getLink('eth1', { netns: b }))?.kind, 'veth');
  assert.equal(await getLink('x1', { netns: a }), undefined);
  await deleteLink('a0', { netns: a });
  await deleteLink('a0', { netns: a });
  assert.equal(await getLink('b0', { netns: b }), undefined, 'deleting one end removes the pair');
  await assert.rejects(setLink('a0', { netns: a, up: true }), code('ERR_LINK_NOT_FOUND'));
  await assert.rejects(setLink('x0', { netns: a, mtu: 20 }), code('ERR_BAD_MTU'));
  await assert.rejects(setLink('x0', { netns: a, mac: 'zz' }), code('ERR_BAD_MAC'));
  await assert.rejects(ensureVeth({ name: 'much-too-long-name', peer: 'p' }), code('ERR_BAD_NAME'));
});

test('bridge with two ports forwards; routes; ensureBridge is idempotent and checks the kind', {
  skip,
}, async (t) => {
  const [br, p1, p2] = await namespaces(t, 'br', 'p1', 'p2');
  await ensureBridge('br0', { netns: br, mtu: 1450 });
  await ensureBridge('br0', { netns: br, mtu: 1450 });
  for (const [i, p] of [p1!, p2!].entries()) {
    await ensureVeth({ name: `port${i}`, netns: br, peer: 'eth0', peerNetns: p, mtu: 1450 });
    await attachPort('br0', `port${i}`, { netns: br });
    await addAddr('eth0', `10.98.0.${i + 2}/24`, { netns: p });
    await setLink('eth0', { netns: p, up: true });
  }
  await addAddr('br0', '10.98.0.1/24', { netns: br });
  assert.deepEqual(await bridgePorts('br0', { netns: br }), ['port0', 'port1']);
  assert.equal((await getLink('port0', { netns: br }))?.master, 'br0');
  assert.ok(await pings(p1!, '10.98.0.3'), 'port to port through the bridge');
  await replaceRoute({ dst: 'default', via: '10.98.0.1', netns: p1 });
  await replaceRoute({ dst: 'default', via: '10.98.0.1', netns: p1 });
  assert.ok((await listRoutes({ netns: p1 })).some((r) => r.dst === 'default' && r.gateway === '10.98.0.1'));
  assert.equal((await routeGet('192.0.2.9', { netns: p1 }))?.gateway, '10.98.0.1');
  await assert.rejects(ensureBridge('port0', { netns: br }), code('ERR_KERNEL'));
  await assert.rejects(replaceRoute({ dst: '10.0.0.1/8', netns: p1 }), code('ERR_BAD_CIDR'));
});

test('underlay MTU detection: fallback, default route, device, route MTU', { skip }, async (t) => {
  const [m] = await namespaces(t, 'mtu');
  assert.deepEqual(await detectUnderlayMtu({ netns: m }), {
    underlay: 1500,
    overlay: 1450,
    source: 'fallback',
  });
  await ensureVeth({ name: 'u0', peer: 'u1', netns: m, mtu: 1400 });
  await setLink('u0', { netns: m, up: true });
  await setLink('u1', { netns: m, up: true, mtu: 9000 });
  await addAddr('u0', '192.0.2.1/24', { netns: m });
  await replaceRoute({ dst: 'default', via: '192.0.2.2', netns: m });
  assert.deepEqual(await detectUnderlayMtu({ netns: m }), {
    underlay: 1400,
    overlay: 1350,
    device: 'u0',
    source: 'default-route',
  });
  assert.equal((await detectUnderlayMtu({ netns: m, device: 'u1' })).overlay, 8950);
  await replaceRoute({ dst: '198.51.100.0/24', via: '192.0.2.2', mtu: 1300, netns: m });
  const r = await detectUnderlayMtu({ netns: m, dest: '198.51.100.7' });
  assert.deepEqual([r.underlay, r.overlay, r.source], [1300, 1250, 'route']);
  await assert.rejects(detectUnderlayMtu({ netns: m, device: 'nope0' }), code('ERR_LINK_NOT_FOUND'));
});

test('gateway bridge: NAT egress to an outside namespace, containers cannot reach each other', {
  skip,
}, async (t) => {
  const [host, outside, c1, c2] = await namespaces(t, 'host', 'out', 'c1', 'c2');
  // The host's uplink to the outside world; the outside has no route back to 172.18/16.
  await ensureVeth({ name: 'uplink', netns: host, peer: 'eth0', peerNetns: outside });
  await addAddr('uplink', '192.0.2.1/24', { netns: host });
  await addAddr('eth0', '192.0.2.2/24', { netns: outside });
  await setLink('uplink', { netns: host, up: true });
  await setLink('eth0', { netns: outside, up: true });
  await ensureBridge(GATEWAY_BRIDGE, { netns: host });
  await addAddr(GATEWAY_BRIDGE, '172.18.0.1/16', { netns: host });
  for (const [i, c] of [c1!, c2!].entries()) {
    await ensureVeth({ name: `gw${i}`, netns: host, peer: 'eth1', peerNetns: c });
    await attachPort(GATEWAY_BRIDGE, `gw${i}`, { netns: host, isolated: i === 0 });
    await addAddr('eth1', `172.18.0.${i + 2}/16`, { netns: c });
    await setLink('eth1', { netns: c, up: true });
    await replaceRoute({ dst: 'default', via: '172.18.0.1', netns: c });
  }
  // Before the rules: no egress (no forwarding, no NAT); one isolated port alone does not isolate.
  assert.equal(await pings(c1!, '192.0.2.2'), false, 'no egress before NAT');
  assert.ok(await pings(c1!, '172.18.0.3'), 'containers reach each other before isolation');

  await ensureGatewayNat({ netns: host });
  await ensureGatewayNat({ netns: host });
  assert.ok(await gatewayNatInstalled({ netns: host }));
  assert.ok(await pings(c1!, '192.0.2.2'), 'c1 egress through NAT');
  assert.ok(await pings(c2!, '192.0.2.2'), 'c2 egress through NAT');
  assert.ok(await pings(c1!, '172.18.0.1'), 'the gateway is reachable');
  if (existsSync('/proc/sys/net/bridge')) {
    // br_netfilter hands bridged frames to the ip forward hook: the nft rule alone blocks them.
    assert.equal(await pings(c1!, '172.18.0.3'), false, 'nft rule: c1 cannot reach c2');
  }
  // Port isolation blocks them without the rule (and without br_netfilter).
  await attachPort(GATEWAY_BRIDGE, 'gw1', { netns: host, isolated: true });
  await removeGatewayNat({ netns: host });
  await removeGatewayNat({ netns: host });
  assert.equal(await gatewayNatInstalled({ netns: host }), false);
  assert.equal(await pings(c1!, '172.18.0.3'), false, 'isolated ports: c1 cannot reach c2');
  assert.equal(await pings(c2!, '172.18.0.2'), false, 'isolated ports: c2 cannot reach c1');
  assert.equal(await pings(c1!, '192.0.2.2'), false, 'no egress once NAT is removed');
});
