// The daemon on one simulated host, through its HTTP API: network lifecycle, containers that
// ping each other, egress through the gateway bridge's NAT to an "outside" namespace, internal
// networks without egress, isolation between networks, and every bad input answered with its
// code and no change of state. Real namespaces, vxnet's TAP datapath (the default) as the VXLAN port.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { isVxError } from '../src/errors.js';
import { ip, ipBatch, ipJson } from '../src/kernel/exec.js';
import { getLink, listLinks } from '../src/kernel/link.js';
import { gatewayNatInstalled } from '../src/kernel/nat.js';
import { listRoutes } from '../src/kernel/route.js';
import { createHost, OUTSIDE_IP, pings, root, type TestHost } from './daemon-host.js';

const skip = root ? false : 'needs root (network namespaces)';
let h: TestHost;

interface Net {
  Id: string;
  Name: string;
  Driver: string;
  Scope: string;
  Internal: boolean;
  Attachable: boolean;
  IPAM: { Config: { Subnet: string; Gateway: string; IPRange?: string }[] };
  Options: Record<string, string>;
  Labels: Record<string, string>;
  Containers: Record<string, { Name: string; IPv4Address: string; MacAddress: string }>;
  VNI: number;
  MTU: number;
}

interface Ct {
  Id: string;
  Name: string;
  Netns: string;
  State: { Status: string; Pid: number };
  NetworkSettings: {
    Networks: Record<string, { IPAddress: string; MacAddress: string; Interface: string }>;
    Gateway: { IPAddress: string } | null;
  };
}

before(async () => {
  if (!root) return;
  h = await createHost();
  await h.start();
});

after(async () => {
  if (h) await h.destroy();
});

const api = <T>(method: string, path: string, body?: unknown) => h.client.call<T>(method, path, body);

function netBody(name: string, o: Record<string, unknown> = {}) {
  return { Name: name, Driver: 'overlay', ...o };
}

async function run(name: string, network: string, o: { ip?: string; cmd?: string[] } = {}): Promise<Ct> {
  const ipam = o.ip === undefined ? {} : { IPv4Address: o.ip };
  await api('POST', `/containers/create?name=${name}`, {
    Cmd: o.cmd ?? ['sleep', '300'],
    HostConfig: { NetworkMode: network },
    NetworkingConfig: { EndpointsConfig: { [network]: { IPAMConfig: ipam } } },
  });
  await api('POST', `/containers/${name}/start`);
  return api<Ct>('GET', `/containers/${name}/json`);
}

const ipOf = (c: Ct, net: string) => c.NetworkSettings.Networks[net]!.IPAddress;

async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isVxError(e), `expected a VxError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

test('network create, inspect (docker-shaped), ls, rm round trip', { skip }, async () => {
  const r = await api<{ Id: string }>(
    'POST',
    '/networks/create',
    netBody('rt', {
      Internal: true,
      Attachable: true,
      Labels: { team: 'a' },
      Options: { 'com.docker.network.driver.mtu': '1400', vxlanid: '5000', encrypted: '' },
      IPAM: { Config: [{ Subnet: '10.90.0.0/24', Gateway: '10.90.0.254', IPRange: '10.90.0.128/25' }] },
    }),
  );
  assert.match(r.Id, /^[0-9a-f]{64}$/);
  for (const ref of ['rt', r.Id, r.Id.slice(0, 12)]) {
    const n = await api<Net>('GET', `/networks/${ref}`);
    assert.equal(n.Name, 'rt');
    assert.equal(n.Driver, 'overlay');
    assert.equal(n.Scope, 'global');
    assert.deepEqual(n.IPAM.Config, [
      { Subnet: '10.90.0.0/24', Gateway: '10.90.0.254', IPRange: '10.90.0.128/25' },
    ]);
    assert.equal(n.Options['com.docker.network.driver.overlay.vxlanid_list'], '5000');
    assert.equal(n.VNI, 5000);
    assert.equal(n.MTU, 1400);
    assert.equal(n.Internal, true);
    assert.equal(n.Attachable, true);
    assert.deepEqual(n.Labels, { team: 'a' });
    assert.deepEqual(n.Containers, {});
  }
  assert.ok((await api<Net[]>('GET', '/networks')).some((n) => n.Id === r.Id));
  // Infrastructure appears with the first endpoint, not with the network.
  assert.deepEqual(await h.namespaces(), []);
  await api('DELETE', '/networks/rt');
  await rejects(api('GET', '/networks/rt'), 'ERR_NETWORK_NOT_FOUND');
  // Its subnet and VNI are free again.
  const again = netBody('rt2', {
    Options: { vxlanid: '5000' },
    IPAM: { Config: [{ Subnet: '10.90.0.0/24' }] },
  });
  await api('POST', '/networks/create', again);
  await api('DELETE', '/networks/rt2');
});

test('two containers on one network ping by IP; plumbing as in the seeds', { skip }, async () => {
  await api('POST', '/networks/create', netBody('front'));
  const a = await run('a', 'front');
  const b = await run('b', 'front');
  assert.equal(a.State.Status, 'running');
  const net = await api<Net>('GET', '/networks/front');
  const [prefix, gateway] = [net.IPAM.Config[0]!.Subnet.split('/')[0]!, net.IPAM.Config[0]!.Gateway];
  assert.equal(ipOf(a, 'front'), prefix.replace(/\.0$/, '.2'));
  assert.equal(Object.keys(net.Containers).length, 2);
  assert.ok(await pings(a.Netns, ipOf(b, 'front')));
  assert.ok(await pings(b.Netns, ipOf(a, 'front')));
  // eth0: MAC 02:42 + the IPv4 bytes, MTU = underlay (1500) - 50.
  const eth0 = await getLink('eth0', { netns: a.Netns });
  const bytes = ipOf(a, 'front')
    .split('.')
    .map((x) => Number(x).toString(16).padStart(2, '0'));
  assert.equal(eth0?.mac, `02:42:${bytes.join(':')}`);
  assert.equal(eth0?.mtu, 1450);
  // No IPv6 on the endpoint's veth ends: their DAD/RS/MLD multicast would be flooded to every
  // container of the network on every host (the overlay is IPv4).
  const v6 = await ip(['-6', '-o', 'addr', 'show', 'dev', 'eth0'], { netns: a.Netns, action: 'addr' });
  assert.equal(v6.trim(), '', `eth0 has no IPv6 address: ${v6}`);
  // The sandbox: br0 with the gateway address, and as the VXLAN port vxnet's TAP (the default
  // port kind) on br0 with the overlay MTU, served by the daemon's datapath for the network's VNI.
  const sandbox = (await h.namespaces()).find((n) => n.startsWith('vxsb-'))!;
  const addrs = await ip(['-4', '-br', 'addr', 'show', 'dev', 'br0'], { netns: sandbox, action: 'addr' });
  assert.match(addrs, new RegExp(`${gateway.replaceAll('.', '\\.')}/24`));
  const links = await ipJson<{
    ifname: string;
    mtu: number;
    master?: string;
    operstate: string;
    linkinfo?: { info_kind: string; info_data?: { type?: string } };
  }>(['-d', 'link', 'show'], { netns: sandbox, action: 'links' });
  const tap = links.find((l) => l.ifname === 'vxtap0');
  assert.equal(tap?.linkinfo?.info_kind, 'tun', JSON.stringify(links));
  assert.equal(tap?.linkinfo?.info_data?.type, 'tap');
  assert.equal(tap?.master, 'br0');
  assert.equal(tap?.mtu, net.MTU);
  assert.equal(net.MTU, 1450);
  assert.ok(!links.some((l) => l.linkinfo?.info_kind === 'vxlan'), 'no kernel vxlan port');
  const ports6 = await ip(['-6', '-o', 'addr', 'show'], { netns: sandbox, action: 'addr' });
  assert.ok(!/ vp[0-9a-f]+ /.test(ports6), `the bridge ports of endpoints have no IPv6 address: ${ports6}`);
  assert.equal((await api<{ OverlayPorts: string }>('GET', '/info')).OverlayPorts, 'vxnet-tap');
  // The datapath serves the VNI: the ARP broadcasts a and b sent crossed br0 into the TAP, and the
  // engine counted them as dropped for lack of peers (the network is on this host only).
  const stats = await api<{ name: string; vni: number; counters: Record<string, number> }[]>('GET', '/stats');
  const front = stats.find((x) => x.name === 'front');
  assert.equal(front?.vni, net.VNI);
  assert.ok((front?.counters['drops.noPeers'] ?? 0) > 0, JSON.stringify(stats));
  assert.ok(await pings(a.Netns, gateway), 'the gateway address on br0 answers');
});

test('egress through the gateway bridge NAT; containers blocked from each other there', {
  skip,
}, async () => {
  const a = await api<Ct>('GET', '/containers/a/json');
  const b = await api<Ct>('GET', '/containers/b/json');
  // The outside namespace has no route to 172.18.0.0/16: an answer proves the masquerade.
  assert.ok(await pings(a.Netns, OUTSIDE_IP));
  assert.ok(await gatewayNatInstalled({ netns: h.ns }));
  assert.ok(a.NetworkSettings.Gateway && b.NetworkSettings.Gateway);
  assert.equal(await pings(a.Netns, b.NetworkSettings.Gateway.IPAddress), false);
});

test('an internal network has no egress; networks are isolated from each other', { skip }, async () => {
  await api('POST', '/networks/create', netBody('back', { Internal: true }));
  await api('POST', '/networks/create', netBody('side'));
  const c = await run('c', 'back');
  const d = await run('d', 'side');
  const a = await api<Ct>('GET', '/containers/a/json');
  assert.equal(c.NetworkSettings.Gateway, null);
  assert.equal(await getLink('eth1', { netns: c.Netns }), undefined);
  assert.equal(await pings(c.Netns, OUTSIDE_IP), false);
  assert.ok(await pings(d.Netns, OUTSIDE_IP));
  for (const [x, y, net] of [
    [a, c, 'back'],
    [c, a, 'front'],
    [a, d, 'side'],
    [d, a, 'front'],
  ] as const) {
    assert.equal(await pings(x.Netns, ipOf(y, net)), false, `${x.Name} must not reach ${y.Name}`);
  }
  assert.equal(await pings(a.Netns, d.NetworkSettings.Gateway!.IPAddress), false);
});

test('every bad input returns its code and leaves state unchanged', { skip }, async () => {
  const a = await api<Ct>('GET', '/containers/a/json');
  const front = await api<Net>('GET', '/networks/front');
  const snapshot = async () =>
    JSON.stringify([
      await api('GET', '/networks'),
      await api('GET', '/containers/json'),
      await h.namespaces(),
    ]);
  const before = await snapshot();
  const subnet = (s: string, extra: Record<string, string> = {}) => ({
    IPAM: { Config: [{ Subnet: s, ...extra }] },
  });
  const runBody = (net: string, o: { ip?: string; cmd?: string[] } = {}) => ({
    Cmd: o.cmd ?? ['true'],
    HostConfig: { NetworkMode: net },
    NetworkingConfig: {
      EndpointsConfig: { [net]: { IPAMConfig: o.ip === undefined ? {} : { IPv4Address: o.ip } } },
    },
  });
  const cases: [string, () => Promise<unknown>][] = [
    ['ERR_BAD_CIDR', () => api('POST', '/networks/create', netBody('x', subnet('10.1.2.3/24')))],
    ['ERR_BAD_CIDR', () => api('POST', '/networks/create', netBody('x', subnet('10.1.0.0/33')))],
    ['ERR_BAD_CIDR', () => api('POST', '/networks/create', netBody('x', subnet('nonsense')))],
    [
      'ERR_SUBNET_OVERLAP',
      () =>
        api(
          'POST',
          '/networks/create',
          netBody('x', subnet(front.IPAM.Config[0]!.Subnet.replace('/24', '/16'))),
        ),
    ],
    ['ERR_NAME_IN_USE', () => api('POST', '/networks/create', netBody('front'))],
    ['ERR_SUBNET_OVERLAP', () => api('POST', '/networks/create', netBody('x', subnet('172.18.128.0/24')))],
    ['ERR_BAD_NAME', () => api('POST', '/networks/create', netBody('a b'))],
    ['ERR_BAD_DRIVER', () => api('POST', '/networks/create', { Name: 'x', Driver: 'bridge' })],
    ['ERR_BAD_OPTION', () => api('POST', '/networks/create', netBody('x', { Options: { 'no.such': '1' } }))],
    [
      'ERR_BAD_MTU',
      () =>
        api('POST', '/networks/create', netBody('x', { Options: { 'com.docker.network.driver.mtu': '10' } })),
    ],
    [
      'ERR_BAD_MTU',
      () =>
        api(
          'POST',
          '/networks/create',
          netBody('x', { Options: { 'com.docker.network.driver.mtu': 'big' } }),
        ),
    ],
    [
      'ERR_VNI_OUT_OF_RANGE',
      () => api('POST', '/networks/create', netBody('x', { Options: { vxlanid: '42' } })),
    ],
    [
      'ERR_VNI_IN_USE',
      () => api('POST', '/networks/create', netBody('x', { Options: { vxlanid: String(front.VNI) } })),
    ],
    [
      'ERR_IP_OUT_OF_RANGE',
      () => api('POST', '/networks/create', netBody('x', subnet('10.91.0.0/24', { Gateway: '10.92.0.1' }))),
    ],
    [
      'ERR_IPAM_NEEDS_SUBNET',
      () => api('POST', '/networks/create', netBody('x', { IPAM: { Config: [{ Gateway: '10.91.0.1' }] } })),
    ],
    ['ERR_BAD_IP', () => api('POST', '/containers/create?name=x', runBody('front', { ip: '10.0.0.300' }))],
    [
      'ERR_IP_OUT_OF_RANGE',
      () => api('POST', '/containers/create?name=x', runBody('front', { ip: '192.0.2.9' })),
    ],
    [
      'ERR_IP_RESERVED',
      () => api('POST', '/containers/create?name=x', runBody('front', { ip: front.IPAM.Config[0]!.Gateway })),
    ],
    [
      'ERR_IP_IN_USE',
      () => api('POST', '/containers/create?name=x', runBody('front', { ip: ipOf(a, 'front') })),
    ],
    ['ERR_NAME_IN_USE', () => api('POST', '/containers/create?name=a', runBody('front'))],
    ['ERR_NETWORK_NOT_FOUND', () => api('POST', '/containers/create?name=x', runBody('nope'))],
    ['ERR_BAD_COMMAND', () => api('POST', '/containers/create?name=x', runBody('front', { cmd: [] }))],
    ['ERR_NETWORK_IN_USE', () => api('DELETE', '/networks/front')],
    ['ERR_NETWORK_NOT_FOUND', () => api('DELETE', '/networks/nope')],
    ['ERR_CONTAINER_RUNNING', () => api('DELETE', '/containers/a')],
    ['ERR_CONTAINER_NOT_FOUND', () => api('DELETE', '/containers/nope')],
    ['ERR_ENDPOINT_EXISTS', () => api('POST', '/networks/front/connect', { Container: 'a' })],
    ['ERR_BAD_REQUEST', () => h.client.call('POST', '/networks/create', 'not an object')],
  ];
  for (const [code, call] of cases) {
    await rejects(call(), code);
    assert.equal(await snapshot(), before, `state changed after the ${code} case`);
  }
  const r = await h.client.raw('DELETE', '/networks/nope');
  assert.equal(r.status, 404);
  assert.equal((await h.client.raw('DELETE', '/networks/front')).status, 409);
  assert.equal((await h.client.raw('POST', '/networks/create', netBody('x', subnet('bad')))).status, 400);
});

test('a full subnet is reported with its own code and changes nothing', { skip }, async () => {
  await api('POST', '/networks/create', netBody('tiny', { IPAM: { Config: [{ Subnet: '10.95.0.0/30' }] } }));
  const only = await run('only', 'tiny');
  assert.equal(ipOf(only, 'tiny'), '10.95.0.2');
  const before = JSON.stringify([await api('GET', '/containers/json'), await h.namespaces()]);
  await rejects(
    api('POST', '/containers/create?name=more', { Cmd: ['true'], HostConfig: { NetworkMode: 'tiny' } }),
    'ERR_SUBNET_FULL',
  );
  assert.equal(JSON.stringify([await api('GET', '/containers/json'), await h.namespaces()]), before);
  await api('DELETE', '/containers/only?force=1');
  await api('DELETE', '/networks/tiny');
});

test('attach/detach a namespace made elsewhere', { skip }, async () => {
  const other = `vxdx-${h.tag}`;
  await ip(['netns', 'add', other], { action: 'add netns' });
  try {
    // The other runtime's own uplink and default route, which attaching must leave alone.
    await ipBatch(
      [
        ['link', 'add', 'dm0', 'type', 'veth', 'peer', 'name', 'dm1'],
        ['link', 'set', 'dev', 'dm1', 'up'],
        ['link', 'set', 'dev', 'dm0', 'up'],
        ['addr', 'add', '192.0.2.1/24', 'dev', 'dm0'],
        ['route', 'add', 'default', 'via', '192.0.2.254', 'dev', 'dm0'],
      ],
      { netns: other, action: 'foreign uplink' },
    );
    const ep = await api<{ IPAddress: string; Interface: string }>('POST', '/networks/front/connect', {
      Container: other,
    });
    assert.equal(ep.Interface, 'eth0');
    const routes = await listRoutes({ netns: other });
    assert.deepEqual(
      routes.filter((r) => r.dst === 'default').map((r) => r.dev),
      ['dm0'],
    );
    assert.ok(await getLink('eth1', { netns: other }), 'eth1 on the gateway bridge');
    const a = await api<Ct>('GET', '/containers/a/json');
    assert.ok(await pings(other, ipOf(a, 'front')));
    await api('POST', '/networks/front/disconnect', { Container: other });
    await rejects(api('GET', `/containers/${other}/json`), 'ERR_CONTAINER_NOT_FOUND');
    // The namespace stays (it is not vxnet's), without vxnet's interfaces.
    assert.deepEqual((await listLinks({ netns: other })).map((l) => l.name).sort(), ['dm0', 'dm1', 'lo']);
  } finally {
    await ip(['netns', 'delete', other], { action: 'delete netns' }).catch(() => undefined);
  }
});

test('removing the last endpoints removes sandboxes and the gateway bridge', { skip }, async () => {
  for (const name of ['a', 'b', 'c', 'd']) await api('DELETE', `/containers/${name}?force=1`);
  assert.deepEqual(await h.namespaces(), []);
  assert.equal(await getLink('vxnet_gwbridge', { netns: h.ns }), undefined);
  assert.equal(await gatewayNatInstalled({ netns: h.ns }), false);
  for (const n of ['front', 'back', 'side']) await api('DELETE', `/networks/${n}`);
  assert.deepEqual(await api('GET', '/networks'), []);
  assert.deepEqual(await api('GET', '/containers/json'), []);
  // `run` took the batched path every time (the step-by-step one is only the fallback).
  assert.doesNotMatch(h.output.join(''), /batched plumbing failed/);
});
