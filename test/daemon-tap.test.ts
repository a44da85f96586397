// The daemon on vxnet's own datapath (TapPorts, `--vxlan-port tap`): two hosts on one store, each
// daemon in this process for its own host namespace, containers on different hosts ping each
// other through TAP ports served by a VtepEngine per daemon; the TAP sits in the network's sandbox
// on br0, the remote endpoint shows up in /fdb and /stats counts the traffic, and an endpoint
// removed on one host is withdrawn from the other's datapath. Needs root.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { Client } from '../src/cli/client.js';
import { startDaemon } from '../src/daemon/daemon.js';
import { TapPorts } from '../src/daemon/tap-ports.js';
import { ipJson } from '../src/kernel/exec.js';
import { listNetns } from '../src/kernel/netns.js';
import { pings, root, sharedStore, twoHosts, until } from './daemon-host.js';

interface Ct {
  Netns: string;
  NetworkSettings: { Networks: Record<string, { IPAddress: string; MacAddress: string }> };
}

test('daemons on TAP ports: cross-host ping, FDB and counters from the datapath, withdrawn on rm', {
  skip: root ? false : 'needs root (network namespaces)',
}, async (t) => {
  const { hosts, store, daemons } = await twoHosts(t, {
    ns: 'vxth',
    id: 'p',
    subnet: '192.168.212',
    dir: 'vxnet-tp',
  });
  for (const h of hosts) {
    daemons.push(
      await startDaemon({
        stateDir: h.dir,
        socket: join(h.dir, 'vxnet.sock'),
        hostId: h.id,
        store: sharedStore(store),
        storeKind: 'memory',
        hostNetns: h.ns,
        advertise: h.ip,
        ports: new TapPorts({ hostNetns: h.ns, local: h.ip }),
        log: pino({ level: process.env.VXNET_TEST_LOG ?? 'silent' }),
      }),
    );
  }
  const [c1, c2] = hosts.map((h) => new Client(join(h.dir, 'vxnet.sock'))) as [Client, Client];
  await c1.call('POST', '/networks/create', { Name: 'ov', IPAM: { Config: [{ Subnet: '10.89.0.0/24' }] } });
  const run = async (c: Client, name: string) => {
    await c.call('POST', `/containers/create?name=${name}`, {
      Cmd: ['sleep', '120'],
      HostConfig: { NetworkMode: 'ov' },
    });
    await c.call('POST', `/containers/${name}/start`);
    return c.call<Ct>('GET', `/containers/${name}/json`);
  };
  const a = await run(c1, 'a');
  const b = await run(c2, 'b');
  const aEp = a.NetworkSettings.Networks.ov!;
  const bEp = b.NetworkSettings.Networks.ov!;
  const net = await c1.call<{ Id: string; VNI: number }>('GET', '/networks/ov');
  const fdb = await until('host 1 to program b', async () => {
    const rows = await c1.call<{ mac: string }[]>('GET', '/fdb?network=ov');
    return rows.find((r) => r.mac === bEp.MacAddress);
  });
  assert.deepEqual(fdb, {
    network: net.Id,
    vni: net.VNI,
    mac: bEp.MacAddress,
    vtep: hosts[1]!.ip,
    kind: 'static',
    ip: bEp.IPAddress,
  });
  // The port is vxnet's TAP, inside the sandbox, on br0 (no kernel vxlan device anywhere).
  type Link = { ifname: string; master?: string; linkinfo?: { info_kind?: string } };
  let links: Link[] = [];
  for (const n of (await listNetns()).filter((x) => x.includes(`-${hosts[0]!.id}-`))) {
    const l = await ipJson<Link>(['-d', 'link', 'show'], { netns: n, action: 'list links' });
    if (l.some((x) => x.ifname === 'br0')) links = l; // the network's sandbox
  }
  const tap = links.find((l) => l.ifname === 'vxtap0');
  assert.equal(tap?.linkinfo?.info_kind, 'tun', JSON.stringify(links.map((l) => l.ifname)));
  assert.equal(tap?.master, 'br0');
  assert.ok(!links.some((l) => l.linkinfo?.info_kind === 'vxlan'), 'no kernel vxlan port');
  assert.ok(await pings(a.Netns, bEp.IPAddress), 'a (host 1) reaches b (host 2) through the TAP ports');
  assert.ok(await pings(b.Netns, aEp.IPAddress));
  const stats = await c2.call<{ counters: Record<string, number> }[]>('GET', '/stats?network=ov');
  assert.ok((stats[0]?.counters.rxPackets ?? 0) > 0, JSON.stringify(stats));
  assert.equal(typeof stats[0]?.counters['drops.unknownPeer'], 'number', 'drops by reason');
  await c2.call('DELETE', '/containers/b?force=1');
  await until('host 1 to withdraw b', async () => {
    const rows = await c1.call<{ mac: string }[]>('GET', '/fdb?network=ov');
    return !rows.some((r) => r.mac === bEp.MacAddress);
  });
  assert.deepEqual(await c1.call('GET', '/peers'), []);
  assert.equal(await pings(a.Netns, bEp.IPAddress), false);
  await c1.call('DELETE', '/containers/a?force=1');
  await c1.call('DELETE', '/networks/ov');
});
