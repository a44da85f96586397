// A daemon started while its etcd is down: it starts anyway, serves the API saying the store is
// unavailable (calls that need it fail with ERR_STORE_UNAVAILABLE), keeps the containers it had,
// brings their VXLAN port back with the remote endpoints it last had (local state), and when the test starts etcd again it reconciles, adopts them, re-makes their VXLAN port and
// joins the cluster (its membership record appears), after which new containers reach the old.
// Its encrypted network's port gets the cluster keys from the daemon's key file: what it sends to
// a remote endpoint while etcd is down leaves the host as ESP (never cleartext, never dropped
// for want of keys).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { isVxError } from '../src/errors.js';
import { execInNetns } from '../src/kernel/netns.js';
import { type EtcdServer, etcdctl, startEtcd } from '../src/lab/etcd.js';
import { createHost, pings, root, until } from './daemon-host.js';

const skip = root ? false : 'needs root (network namespaces)';
const HOST_IP = '192.168.200.1';
const REMOTE_IP = '10.124.0.200';
const REMOTE_MAC = '02:42:0a:7c:00:c8';
const SEC_REMOTE_IP = '10.125.0.200';
const SEC_REMOTE_MAC = '02:42:0a:7d:00:c8';
/** The remote endpoint of the encrypted network is at the host's underlay neighbour (tcpdump there). */
const SEC_VTEP = '192.168.200.2';

/**
 * The first packet `filter` matches on `dev` in `netns`, as tcpdump prints it ('' after `ms`);
 * resolves `ready` once tcpdump listens.
 */
function capture(netns: string, dev: string, filter: string, ms: number) {
  const child = spawn('ip', [
    'netns',
    'exec',
    netns,
    'timeout',
    String(ms / 1000),
    'tcpdump',
    '-n',
    '-l',
    '-i',
    dev,
    '-c',
    '1',
    filter,
  ]);
  let out = '';
  let err = '';
  const ready = new Promise<void>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (/listening on/.test(err)) resolve();
    });
    child.once('exit', () => resolve());
  });
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const done = new Promise<string>((resolve) => child.once('exit', () => resolve(out)));
  return { ready, done, kill: () => child.kill('SIGKILL') };
}

interface Ct {
  Id: string;
  Netns: string;
  State: { Status: string; Pid: number };
  NetworkSettings: { Networks: Record<string, { IPAddress: string }> };
}

interface Info {
  StoreStatus: string;
  StoreError: string | null;
}

test('daemon started while etcd is down serves, then adopts and joins when etcd starts', {
  skip,
}, async (t) => {
  const h = await createHost();
  let etcd: EtcdServer | undefined;
  t.after(async () => {
    await h.destroy();
    await etcd?.stop();
  });
  const port = 20000 + Math.floor(Math.random() * 20000);
  const urls = { clientUrl: `http://${HOST_IP}:${port}`, peerUrl: `http://${HOST_IP}:${port + 1}` };
  const endpoint = `${HOST_IP}:${port}`;
  const args = ['--cluster-store', `etcd://${endpoint}`, '--cluster-advertise', HOST_IP, '--host-ttl', '3'];
  const startStore = (dataDir?: string) =>
    startEtcd({ netns: h.ns, ...urls, ...(dataDir ? { dataDir } : {}) });

  // A host with a container, on a running etcd; then the daemon stops and etcd goes away.
  etcd = await startStore();
  const dataDir = etcd.dataDir;
  await h.start({}, { args });
  const net = await h.client.call<{ Id: string }>('POST', '/networks/create', {
    Name: 'late',
    Internal: true,
    IPAM: { Config: [{ Subnet: '10.124.0.0/24' }] },
  });
  await h.client.call('POST', '/containers/create?name=c1', {
    Cmd: ['sleep', '300'],
    HostConfig: { NetworkMode: 'late' },
  });
  await h.client.call('POST', '/containers/c1/start');
  const sec = await h.client.call<{ Id: string }>('POST', '/networks/create', {
    Name: 'sec',
    Internal: true,
    Options: { encrypted: '' },
    IPAM: { Config: [{ Subnet: '10.125.0.0/24' }] },
  });
  await h.client.call('POST', '/networks/sec/connect', { Container: 'c1' });
  await h.client.call('GET', '/keys'); // the key manager started (the key file is written)
  const before = await h.client.call<Ct>('GET', '/containers/c1/json');
  // An endpoint of another host (a record as its daemon publishes it), now in the datapath.
  const peer = {
    host: 'tremote',
    networkId: net.Id,
    endpointId: 'ep0',
    ip: REMOTE_IP,
    mac: REMOTE_MAC,
    vtep: '192.168.200.9',
  };
  await etcdctl(['put', `/vxnet/peers/${net.Id}/ep0`, JSON.stringify(peer)], { endpoint, netns: h.ns });
  const secPeer = {
    ...peer,
    networkId: sec.Id,
    endpointId: 'ep1',
    ip: SEC_REMOTE_IP,
    mac: SEC_REMOTE_MAC,
    vtep: SEC_VTEP,
  };
  await etcdctl(['put', `/vxnet/peers/${sec.Id}/ep1`, JSON.stringify(secPeer)], { endpoint, netns: h.ns });
  await until('the remote endpoints programmed', async () => {
    const fdb = await h.client.call<{ mac: string }[]>('GET', '/fdb');
    return fdb.some((r) => r.mac === REMOTE_MAC) && fdb.some((r) => r.mac === SEC_REMOTE_MAC);
  });
  h.daemon!.kill('SIGTERM');
  await h.exited();
  await etcd.stop({ keepData: true });

  // Start with etcd down: the API answers and says so.
  await h.start({}, { args });
  const down = await h.client.call<Info>('GET', '/info');
  assert.equal(down.StoreStatus, 'unavailable');
  assert.match(down.StoreError ?? '', /ERR_STORE_UNAVAILABLE/);
  await assert.rejects(h.client.call('GET', '/containers/json'), (e) =>
    isVxError(e, 'ERR_STORE_UNAVAILABLE'),
  );
  await assert.rejects(h.client.call('POST', '/networks/create', { Name: 'other' }), (e) =>
    isVxError(e, 'ERR_STORE_UNAVAILABLE'),
  );
  assert.equal(h.daemon!.exitCode, null, 'the daemon keeps running');
  // The datapath is back from local state: the port exists and its ARP proxy answers for the
  // remote endpoint with the MAC it had (the ping itself goes nowhere: no such host).
  const sandbox = (await h.namespaces()).find((n) => n.startsWith(`vxsb-${h.hostId}-`));
  assert.ok(sandbox, 'the network sandbox is still there');
  await execInNetns(sandbox, 'ip', ['link', 'show', 'vxtap0']);
  await execInNetns(before.Netns, 'ping', ['-c', '1', '-W', '1', REMOTE_IP]).catch(() => undefined);
  const neigh = await execInNetns(before.Netns, 'ip', ['neigh', 'show', REMOTE_IP]);
  assert.match(neigh, new RegExp(REMOTE_MAC), 'the ARP proxy answered from the restored table');
  // The encrypted network: c1's packets to its remote endpoint leave as ESP, keys from the key file.
  const tap = capture(h.outside, 'up0o', `src host ${HOST_IP} and dst host ${SEC_VTEP} and not arp`, 10000);
  t.after(tap.kill);
  await tap.ready;
  const secIf = (await execInNetns(before.Netns, 'ip', ['-o', 'addr', 'show', 'to', '10.125.0.0/24'])).split(
    /[ :]+/,
  )[1]!;
  let captured = false;
  void tap.done.then(() => {
    captured = true;
  });
  for (let i = 0; i < 5 && !captured; i++)
    await execInNetns(before.Netns, 'ping', ['-c', '1', '-W', '1', '-I', secIf, SEC_REMOTE_IP]).catch(
      () => undefined,
    );
  const sent = await tap.done;
  assert.match(sent, /ESP\(spi=/, `an ESP packet to the remote VTEP (captured: ${JSON.stringify(sent)})`);
  assert.equal((await h.client.call<Info>('GET', '/info')).StoreStatus, 'unavailable');

  // etcd comes back: the daemon finishes its start on its own.
  etcd = await startStore(dataDir);
  await until(
    'the store available again',
    async () => (await h.client.call<Info>('GET', '/info')).StoreStatus === 'available',
    400,
  );
  const after = await until('c1 adopted', async () => {
    const c = await h.client.call<Ct>('GET', '/containers/c1/json').catch(() => undefined);
    return c?.State.Status === 'running' ? c : undefined;
  });
  assert.equal(after.State.Pid, before.State.Pid, 'the same process, adopted');
  const members = await etcdctl(['get', '--prefix', '--keys-only', '/vxnet/members/'], {
    endpoint,
    netns: h.ns,
  });
  assert.match(members, new RegExp(`/vxnet/members/${h.hostId}`), 'joined: membership record on a lease');
  await until('the VXLAN port there', async () =>
    execInNetns(sandbox, 'ip', ['link', 'show', 'vxtap0']).then(
      () => true,
      () => false,
    ),
  );
  // Writes work again, and a new container reaches the adopted one.
  await h.client.call('POST', '/containers/create?name=c2', {
    Cmd: ['sleep', '300'],
    HostConfig: { NetworkMode: 'late' },
  });
  await h.client.call('POST', '/containers/c2/start');
  const c2 = await h.client.call<Ct>('GET', '/containers/c2/json');
  assert.ok(await pings(c2.Netns, after.NetworkSettings.Networks.late!.IPAddress), 'c2 reaches c1');
});
