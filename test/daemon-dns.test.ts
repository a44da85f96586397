// Container names across hosts: the daemon's embedded DNS resolver (src/daemon/names.ts) answers
// at 127.0.0.11 in each container it runs, with the names and aliases of containers on the
// asker's networks, wherever they run. Two daemons (one per simulated host namespace) share one
// store, as in daemon-multihost.test.ts; host2 has an uplink to a namespace playing the outside
// world, where a small resolver answers `outside.test` (forwarding, through the gateway NAT).
// Names are read by glibc (getent) in the container, as its programs read them.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { Client } from '../src/cli/client.js';
import { type RunningDaemon, startDaemon } from '../src/daemon/daemon.js';
import { addAddr } from '../src/kernel/addr.js';
import { ensureVeth, setLink } from '../src/kernel/link.js';
import { deleteNetns, ensureNetns, listNetns } from '../src/kernel/netns.js';
import { replaceRoute } from '../src/kernel/route.js';
import { createMemoryStore } from '../src/store/memory.js';
import { root, sharedStore } from './daemon-host.js';

const skip = root ? false : 'needs root (network namespaces)';
const PY = '/usr/bin/python3';

// Answers outside.test A 192.0.2.7, NXDOMAIN otherwise.
const UPSTREAM = `
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
print('ready', flush=True)
while True:
    q, peer = s.recvfrom(4096)
    i, labels = 12, []
    while q[i]:
        labels.append(q[i+1:i+1+q[i]].decode()); i += 1 + q[i]
    name = '.'.join(labels).lower(); qend = i + 5
    qid, flags = struct.unpack('>HH', q[:4])
    if name == 'outside.test' and q[i+1:i+3] == b'\\x00\\x01':
        body = struct.pack('>HHHHHH', qid, 0x8180 | (flags & 0x100), 1, 1, 0, 0) + q[12:qend]
        body += b'\\xc0\\x0c' + struct.pack('>HHIH', 1, 1, 60, 4) + bytes([192, 0, 2, 7])
    else:
        rcode = 0 if name == 'outside.test' else 3
        body = struct.pack('>HHHHHH', qid, 0x8180 | rcode, 1, 0, 0, 0) + q[12:qend]
    s.sendto(body, peer)
`;

interface Ct {
  Netns: string;
  NetworkSettings: { Networks: Record<string, { IPAddress: string }> };
}

/** glibc's view of `name` inside the container's namespace: exit code and the addresses. */
function getent(netns: string, name: string): Promise<{ code: number; ips: string[] }> {
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', netns, 'getent', 'ahostsv4', name], { timeout: 10000 }, (e, out) => {
      const ips = [...new Set(out.split('\n').map((l) => l.split(/\s+/)[0]!))].filter(Boolean).sort();
      resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, ips });
    });
  });
}

test('names across hosts: a container on host2 resolves web on host1, aliases, scoping by network, forwarding', {
  skip,
}, async (t) => {
  const tag = randomBytes(3).toString('hex');
  const hosts = [1, 2].map((i) => ({
    ns: `vxnh${i}-${tag}`,
    id: `n${i}${tag}`,
    ip: `192.168.213.${i}`,
    dir: mkdtempSync(join(tmpdir(), `vxnet-nh${i}-`)),
  }));
  const outside = `vxno-${tag}`;
  const store = createMemoryStore();
  const daemons: RunningDaemon[] = [];
  let etcNetns: string[] = [];
  t.after(async () => {
    for (const d of daemons) await d.close();
    await store.close();
    for (const n of await listNetns())
      if (hosts.some((h) => n.includes(`-${h.id}-`))) await deleteNetns(n, { killProcesses: true });
    for (const h of hosts) {
      await deleteNetns(h.ns, { killProcesses: true });
      rmSync(h.dir, { recursive: true, force: true });
    }
    await deleteNetns(outside, { killProcesses: true });
    for (const n of etcNetns) rmSync(`/etc/netns/${n}`, { recursive: true, force: true });
  });
  for (const h of hosts) await ensureNetns(h.ns);
  await ensureNetns(outside);
  const [h1, h2] = hosts as [(typeof hosts)[0], (typeof hosts)[0]];
  await ensureVeth({ name: 'ul0', peer: 'ul0p', netns: h1.ns, peerNetns: h2.ns });
  await setLink('ul0', { netns: h1.ns, up: true });
  await setLink('ul0p', { netns: h2.ns, up: true });
  await addAddr('ul0', `${h1.ip}/24`, { netns: h1.ns });
  await addAddr('ul0p', `${h2.ip}/24`, { netns: h2.ns });
  // host2's uplink to the outside, where the upstream resolver listens.
  await ensureVeth({ name: 'up0', peer: 'up0o', netns: h2.ns, peerNetns: outside });
  await setLink('up0', { netns: h2.ns, up: true });
  await setLink('up0o', { netns: outside, up: true });
  await addAddr('up0', '192.168.214.1/24', { netns: h2.ns });
  await addAddr('up0o', '192.168.214.2/24', { netns: outside });
  await replaceRoute({ netns: h2.ns, dst: 'default', via: '192.168.214.2' });
  const upstream = spawn('ip', ['netns', 'exec', outside, PY, '-c', UPSTREAM, '192.168.214.2'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => upstream.kill('SIGKILL'));
  await new Promise((r) => upstream.stdout!.once('data', r));

  const start = (h: (typeof hosts)[0]) =>
    startDaemon({
      stateDir: h.dir,
      socket: join(h.dir, 'vxnet.sock'),
      hostId: h.id,
      store: sharedStore(store),
      storeKind: 'memory',
      hostNetns: h.ns,
      advertise: h.ip,
      log: pino({ level: process.env.VXNET_TEST_LOG ?? 'silent' }),
      dnsUpstreams: ['192.168.214.2'],
      hostTtl: 1,
    });
  for (const h of hosts) daemons.push(await start(h));
  const [c1, c2] = hosts.map((h) => new Client(join(h.dir, 'vxnet.sock'))) as [Client, Client];
  await c1.call('POST', '/networks/create', {
    Name: 'front',
    IPAM: { Config: [{ Subnet: '10.91.0.0/24' }] },
  });
  await c1.call('POST', '/networks/create', { Name: 'back', IPAM: { Config: [{ Subnet: '10.92.0.0/24' }] } });
  const run = async (
    c: Client,
    name: string,
    net: string,
    cmd = ['sleep', '120'],
    aliases: string[] = [],
  ) => {
    await c.call('POST', `/containers/create?name=${name}`, {
      Cmd: cmd,
      HostConfig: { NetworkMode: net },
      NetworkingConfig: { EndpointsConfig: { [net]: { Aliases: aliases } } },
    });
    await c.call('POST', `/containers/${name}/start`);
    const ct = await c.call<Ct>('GET', `/containers/${name}/json`);
    etcNetns.push(ct.Netns);
    return ct;
  };
  const web = await run(c1, 'web', 'front', ['sleep', '120'], ['www']);
  const webIp = web.NetworkSettings.Networks.front!.IPAddress;
  const db = await run(c1, 'db', 'back');
  const client = await run(c2, 'client', 'front');
  assert.equal(
    readFileSync(`/etc/netns/${client.Netns}/resolv.conf`, 'utf8'),
    'nameserver 127.0.0.11\noptions ndots:0\n',
  );
  assert.deepEqual(await getent(client.Netns, 'web'), { code: 0, ips: [webIp] }, 'web (host1) from host2');
  assert.deepEqual(await getent(client.Netns, 'www'), { code: 0, ips: [webIp] }, 'its alias');
  assert.deepEqual(await getent(client.Netns, 'WEB'), { code: 0, ips: [webIp] }, 'case-insensitive');
  assert.equal((await getent(client.Netns, 'db')).code, 2, 'db is on a network client is not on');
  assert.deepEqual(
    await getent(db.Netns, 'db'),
    { code: 0, ips: [db.NetworkSettings.Networks.back!.IPAddress] },
    'but db resolves itself',
  );
  assert.equal((await getent(db.Netns, 'web')).code, 2, 'and does not see front');
  assert.deepEqual(
    await getent(client.Netns, 'outside.test'),
    { code: 0, ips: ['192.0.2.7'] },
    "other names go to the host's resolver",
  );
  assert.equal((await getent(client.Netns, 'nothing.test')).code, 2);

  // The container's own command sees the same names (procs.ts runs it under ip netns exec).
  const probe = await run(c2, 'probe', 'front', ['getent', 'ahostsv4', 'web']);
  assert.deepEqual(await c2.call('POST', '/containers/probe/wait'), { StatusCode: 0 });
  assert.match(
    await c2.call<string>('GET', '/containers/probe/logs'),
    new RegExp(`^${webIp.replaceAll('.', '\\.')}\\s`, 'm'),
  );

  // host2's daemon restarts: its running containers get their resolver back.
  await daemons[1]!.close();
  daemons[1] = await start(h2);
  assert.deepEqual(await getent(client.Netns, 'web'), { code: 0, ips: [webIp] }, 'after a daemon restart');

  // connect: client joins back and now sees db; web goes and stops resolving.
  await c2.call('POST', '/networks/back/connect', { Container: 'client' });
  assert.deepEqual((await getent(client.Netns, 'db')).code, 0, 'db resolves once client is on back');
  // host1's daemon stops renewing its membership: its containers stop resolving within the TTL,
  // and resolve again once it is back.
  await daemons[0]!.close();
  const gone = Date.now();
  while ((await getent(client.Netns, 'db')).code === 0) {
    assert.ok(Date.now() - gone < 5000, "host1's names still resolve 5 s after its lease (1 s)");
    await new Promise((r) => setTimeout(r, 100));
  }
  daemons[0] = await start(h1);
  assert.equal((await getent(client.Netns, 'db')).code, 0, 'host1 is back');
  await c1.call('DELETE', '/containers/web?force=1');
  assert.equal((await getent(client.Netns, 'web')).code, 2, 'a removed container no longer resolves');
  await c2.call('DELETE', '/containers/probe?force=1');
  assert.equal(existsSync(`/etc/netns/${probe.Netns}`), false, "a removed container's resolv.conf goes");
  etcNetns = etcNetns.filter((n) => n !== probe.Netns);
});
