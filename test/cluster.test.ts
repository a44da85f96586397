// A 3-host cluster on a real etcd (the lab: a namespace per host, an underlay bridge, etcd in
// its own namespace, a `vxnet daemon --cluster-store etcd://... --host-ttl 3` per host), driven
// through the daemons' APIs: the ping matrix of 6 containers on 2 isolated networks, 20
// concurrent network creates spread over the hosts, a host's daemon killed with kill -9 (its
// peers withdrawn everywhere within the TTL), its restart (re-adopted, others undisturbed) and an
// etcd restart (forwarding goes on, the API says the store is unavailable, writes resume).

import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import type { Client } from '../src/cli/client.js';
import type { PeerInfo } from '../src/daemon/ports.js';
import { isVxError } from '../src/errors.js';
import { deleteNetns } from '../src/kernel/netns.js';
import { type EtcdServer, etcdctl, startEtcd } from '../src/lab/etcd.js';
import { cliEntry, type Lab, type LabHost, labDown, labUp } from '../src/lab/lab.js';
import { pings, root } from './daemon-host.js';

const execFileP = promisify(execFile);
const skip = root ? false : 'needs root (network namespaces)';
const TTL = 3;

interface Ct {
  Netns: string;
  NetworkSettings: { Networks: Record<string, { IPAddress: string; MacAddress: string }> };
}

interface Info {
  StoreStatus: string;
  StoreError: string | null;
  Networks: number | null;
}

async function until<T>(what: string, f: () => Promise<T | undefined | false>, ms = 10000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A ping running in the background; `stop()` gives how many were sent and answered. */
function pingStream(netns: string, dest: string) {
  const child = spawn('ip', ['netns', 'exec', netns, 'ping', '-i', '0.1', '-w', '120', dest], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    async stop() {
      child.kill('SIGINT');
      await done;
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      assert.ok(m, `ping summary in: ${out.slice(-300)}`);
      const sent = Number(m[1]);
      // The request sent last may still be in flight when SIGINT ends ping: not a loss.
      const answered = new Set([...out.matchAll(/icmp_seq=(\d+)/g)].map((x) => Number(x[1])));
      let lost = 0;
      for (let seq = 1; seq < sent; seq++) if (!answered.has(seq)) lost++;
      return { sent, received: Number(m[2]), lost };
    },
    kill: () => child.kill('SIGKILL'),
  };
}

/** Starts a lab host's daemon again, exactly as the lab did (it dies with the host's namespace). */
function restartDaemon(lab: Lab, h: LabHost, ttl = TTL): ChildProcess {
  const entry = cliEntry();
  const out = openSync(h.log, 'a', 0o600);
  try {
    return spawn(
      'nsenter',
      [
        `--net=/run/netns/${h.ns}`,
        '--',
        process.execPath,
        ...entry.args,
        'daemon',
        ...['--state-dir', h.stateDir, '--socket', h.socket, '--host-id', h.hostId],
        ...['--cluster-store', lab.state.etcd.clusterStore, '--cluster-advertise', 'eth0'],
        ...['--host-ttl', String(ttl)],
      ],
      { cwd: entry.cwd, stdio: ['ignore', out, out], env: { ...process.env, VXNET_HOST: undefined } },
    );
  } finally {
    closeSync(out);
  }
}

/** A network's datapath counters on a host (the TAP datapath's, by name). */
async function counters(c: Client, net: string): Promise<Record<string, number>> {
  const rows = await c.call<{ name: string; counters: Record<string, number> }[]>('GET', '/stats');
  return rows.find((r) => r.name === net)?.counters ?? {};
}

const vteps = async (c: Client) => (await c.call<PeerInfo[]>('GET', '/peers')).map((p) => p.vtep).sort();

test('cluster: 3 hosts on etcd', { skip, timeout: 180_000 }, async (t) => {
  const prefix = `cl${randomBytes(2).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'vxnet-cluster-'));
  const extra: { kill(): void }[] = [];
  let etcd2: EtcdServer | undefined;
  t.after(async () => {
    for (const p of extra) p.kill();
    await etcd2?.stop({ keepData: true });
    await labDown({ dir });
    rmSync(dir, { recursive: true, force: true });
  });
  const lab = await labUp({ hosts: 3, prefix, dir, daemonArgs: ['--host-ttl', String(TTL)] });
  const hosts = lab.state.hosts;
  const [c1, c2, c3] = hosts.map((h) => lab.client(h.name)) as [Client, Client, Client];
  const clients = [c1, c2, c3];
  const cts = new Map<string, { netns: string; ip: string; mac: string; host: number; net: string }>();
  const run = async (host: number, name: string, net: string) => {
    const c = clients[host]!;
    await c.call('POST', `/containers/create?name=${name}`, {
      Cmd: ['sleep', '600'],
      HostConfig: { NetworkMode: net },
    });
    await c.call('POST', `/containers/${name}/start`);
    const ct = await c.call<Ct>('GET', `/containers/${name}/json`);
    const ep = ct.NetworkSettings.Networks[net]!;
    cts.set(name, { netns: ct.Netns, ip: ep.IPAddress, mac: ep.MacAddress, host, net });
  };

  await t.test('ping matrix: 6 containers on 2 networks over 3 hosts, the networks isolated', async () => {
    await c1.call('POST', '/networks/create', { Name: 'na', IPAM: { Config: [{ Subnet: '10.61.0.0/24' }] } });
    await c2.call('POST', '/networks/create', { Name: 'nb', IPAM: { Config: [{ Subnet: '10.62.0.0/24' }] } });
    for (const [i, c] of clients.entries()) {
      await run(i, `a${i + 1}`, 'na');
      await run(i, `b${i + 1}`, 'nb');
      // The network made on host 1 is seen on every host, and vice versa.
      assert.deepEqual(
        (await c.call<{ Name: string }[]>('GET', '/networks')).map((n) => n.Name),
        ['na', 'nb'],
      );
    }
    // Every host learns the 4 endpoints of the other two hosts, behind their tunnel endpoints.
    for (const [i, c] of clients.entries()) {
      const others = hosts.filter((_, j) => j !== i).map((h) => h.ip);
      await until(`host ${i + 1} to learn its peers`, async () => {
        const peers = await c.call<PeerInfo[]>('GET', '/peers');
        return (
          peers.length === 2 &&
          peers.every((p) => others.includes(p.vtep) && p.endpoints === 2 && p.networks.length === 2)
        );
      });
    }
    const names = [...cts.keys()];
    const pairs = names.flatMap((from) => names.filter((to) => to !== from).map((to) => [from, to] as const));
    const results = await Promise.all(
      pairs.map(async ([from, to]) => {
        const a = cts.get(from)!;
        const b = cts.get(to)!;
        // Same network: answered (one retry for the first ARP); other network: never.
        const ok = (await pings(a.netns, b.ip)) || (a.net === b.net && (await pings(a.netns, b.ip)));
        return { from, to, same: a.net === b.net, ok };
      }),
    );
    const wrong = results.filter((r) => r.ok !== r.same).map((r) => `${r.from}->${r.to}: ${r.ok}`);
    assert.deepEqual(wrong, [], 'every pair on one network answers, no pair across networks does');
    assert.equal(results.filter((r) => r.ok).length, 12);
    // Each network's VXLAN port holds the remote endpoints of its own network only.
    for (const c of clients) {
      for (const net of ['na', 'nb']) {
        const macs = (await c.call<{ mac: string; vtep?: string }[]>('GET', `/fdb?network=${net}`))
          .filter((e) => e.vtep !== undefined && e.mac !== '00:00:00:00:00:00')
          .map((e) => e.mac)
          .sort();
        const want = [...cts.values()]
          .filter((x) => x.net === net && clients[x.host] !== c)
          .map((x) => x.mac)
          .sort();
        assert.deepEqual(macs, want, `${net} on one host`);
      }
    }
  });

  await t.test('20 concurrent network creates over 3 hosts: no VNI or subnet collision', async () => {
    const made = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        clients[i % 3]!.call('POST', '/networks/create', { Name: `cc${i}` }),
      ),
    );
    assert.deepEqual(
      made.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)),
      [],
    );
    const nets = (
      await c3.call<{ Name: string; VNI: number; IPAM: { Config: { Subnet: string }[] } }[]>(
        'GET',
        '/networks',
      )
    ).filter((n) => n.Name.startsWith('cc'));
    assert.equal(nets.length, 20);
    const vnis = new Set(nets.map((n) => n.VNI));
    const subnets = new Set(nets.map((n) => n.IPAM.Config[0]!.Subnet));
    assert.equal(vnis.size, 20, 'distinct VNIs');
    assert.equal(subnets.size, 20, 'distinct subnets');
    for (const s of ['10.61.0.0/24', '10.62.0.0/24']) assert.ok(!subnets.has(s));
    // The same explicit subnet asked on two hosts at once: one wins, the other gets a clear code.
    const race = await Promise.allSettled(
      [c1, c2].map((c, i) =>
        c.call('POST', '/networks/create', {
          Name: `race${i}`,
          IPAM: { Config: [{ Subnet: '10.63.0.0/24' }] },
        }),
      ),
    );
    assert.equal(race.filter((r) => r.status === 'fulfilled').length, 1);
    const lost = race.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    assert.ok(isVxError(lost.reason, 'ERR_SUBNET_OVERLAP'), String(lost.reason));
    // Removed concurrently from every host: all go, and their VNIs and subnets are free again.
    const winner = race[0]!.status === 'fulfilled' ? 'race0' : 'race1';
    const removed = await Promise.allSettled(
      [...nets.map((n) => n.Name), winner].map((n, i) => clients[i % 3]!.call('DELETE', `/networks/${n}`)),
    );
    assert.deepEqual(
      removed.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)),
      [],
    );
    assert.deepEqual(
      (await c2.call<{ Name: string }[]>('GET', '/networks')).map((n) => n.Name),
      ['na', 'nb'],
    );
  });

  const a = (n: number) => cts.get(`a${n}`)!;
  let daemon3: ChildProcess | undefined;
  // Traffic between hosts 1 and 2 runs through the whole failure and restart of host 3.
  const steady = pingStream(a(1).netns, a(2).ip);
  extra.push(steady);

  await t.test(
    `kill -9 of a host's daemon: the others withdraw its peers within the TTL (${TTL} s)`,
    async () => {
      assert.ok(await pings(a(1).netns, a(3).ip));
      for (const c of [c1, c2]) assert.ok((await vteps(c)).includes(hosts[2]!.ip));
      process.kill(hosts[2]!.pid!, 'SIGKILL');
      const t0 = Date.now();
      const took = await Promise.all(
        [c1, c2].map(async (c) => {
          await until(
            'host 3 withdrawn',
            async () =>
              !(await vteps(c)).includes(hosts[2]!.ip) &&
              !(await c.call<{ vtep?: string }[]>('GET', '/fdb')).some((e) => e.vtep === hosts[2]!.ip),
            10000,
          );
          return Date.now() - t0;
        }),
      );
      t.diagnostic(`withdrawn on host 1 after ${took[0]} ms, on host 2 after ${took[1]} ms (TTL ${TTL} s)`);
      for (const ms of took) assert.ok(ms <= TTL * 1000, `withdrawn after ${ms} ms`);
      // The FDB of host 1 has no entry towards host 3 any more, and host 3's containers are cut off.
      const fdb = await c1.call<{ vtep?: string }[]>('GET', '/fdb?network=na');
      assert.ok(!fdb.some((e) => e.vtep === hosts[2]!.ip), JSON.stringify(fdb));
      assert.ok(fdb.some((e) => e.vtep === hosts[1]!.ip));
      assert.equal(await pings(a(1).netns, a(3).ip), false);
    },
  );

  await t.test(
    'a restarted daemon re-adopts its endpoints; traffic of the others is undisturbed',
    async () => {
      daemon3 = restartDaemon(lab, hosts[2]!);
      extra.push({ kill: () => daemon3?.kill('SIGKILL') });
      await until('host 3 to answer', () => c3.call('GET', '/_ping', undefined).then(() => true), 30000);
      const listed = await c3.call<{ Name: string; State: { Status: string } }[]>('GET', '/containers/json');
      assert.deepEqual(listed.map((c) => [c.Name, c.State.Status]).sort(), [
        ['a3', 'running'],
        ['b3', 'running'],
      ]);
      for (const c of [c1, c2])
        await until('host 3 back in the peers', async () => (await vteps(c)).includes(hosts[2]!.ip));
      await until('a1 to reach a3 again', () => pings(a(1).netns, a(3).ip));
      await until('b3 to reach b1 again (its own network: programmed separately)', () =>
        pings(cts.get('b3')!.netns, cts.get('b1')!.ip),
      );
      const { sent, received, lost } = await steady.stop();
      t.diagnostic(`hosts 1->2 while host 3 died and came back: ${received}/${sent} pings answered`);
      assert.ok(sent >= 20);
      assert.equal(lost, 0, 'no ping between hosts 1 and 2 lost');
    },
  );

  await t.test('a daemon restarted within its TTL: the other hosts see no change', async () => {
    const h2 = hosts[1]!;
    const answers = () => until('host 2 to answer', () => c2.call('GET', '/_ping').then(() => true), 30000);
    // First onto a long TTL (this restart outlives the lab's 3 s lease: a plain rejoin).
    process.kill(h2.pid!, 'SIGKILL');
    const first = restartDaemon(lab, h2, 20);
    extra.push({ kill: () => first.kill('SIGKILL') });
    await answers();
    await until('host 2 back in the peers of host 1', async () => (await vteps(c1)).includes(h2.ip));
    await until('a1 -> a2', () => pings(a(1).netns, a(2).ip));
    const stream = pingStream(a(1).netns, a(2).ip);
    extra.push(stream);
    let missing = 0;
    let polls = 0;
    let watching = true;
    const watch = (async () => {
      while (watching) {
        const [v1, v3] = await Promise.all([vteps(c1), vteps(c3)]);
        if (!v1.includes(h2.ip) || !v3.includes(h2.ip)) missing++;
        polls++;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const died = new Promise((r) => first.once('exit', r));
    const down = Date.now();
    first.kill('SIGKILL');
    await died;
    const second = restartDaemon(lab, h2, 20);
    extra.push({ kill: () => second.kill('SIGKILL') });
    await answers();
    await until('a1 -> a2 again', () => pings(a(1).netns, a(2).ip), 10000);
    const downMs = Date.now() - down;
    const t0 = Date.now();
    await until('a second of traffic after the restart', async () => Date.now() - t0 > 1000);
    watching = false;
    await watch;
    const { sent, received } = await stream.stop();
    t.diagnostic(
      `host 2 restarted within its TTL: ${received}/${sent} pings from host 1 (no path for ` +
        `${downMs} ms: kill -9 to the first answered ping), ${missing}/${polls} polls missing it`,
    );
    assert.equal(missing, 0, 'hosts 1 and 3 never dropped host 2');
    assert.ok(polls >= 10);
    // Host 2's VXLAN ports are TAPs served by its daemon (the default port kind): they go with the
    // process and come back with the restart, so pings (every 100 ms) are lost only meanwhile.
    assert.ok(received >= 5, `${received}/${sent} answered`);
    assert.ok(sent - received <= Math.ceil(downMs / 100) + 2, `${sent - received} lost in ${downMs} ms`);
    const listed = await c2.call<{ Name: string; State: { Status: string } }[]>('GET', '/containers/json');
    assert.deepEqual(listed.map((c) => [c.Name, c.State.Status]).sort(), [
      ['a2', 'running'],
      ['b2', 'running'],
    ]);
  });

  await t.test(
    'a host cut off from etcd keeps its entries, then resyncs with no stale one and rejoins',
    async () => {
      const h1 = hosts[0]!;
      const fdbMacs = async (c: Client) =>
        new Set((await c.call<{ mac: string }[]>('GET', '/fdb')).map((e) => e.mac));
      const b2 = cts.get('b2')!;
      assert.ok((await fdbMacs(c1)).has(b2.mac));
      // A partition: host 1's packets to etcd are dropped (the TCP connections hang, no error).
      await execFileP('ip', ['-n', h1.ns, 'route', 'add', 'blackhole', `${lab.state.etcd.ip}/32`]);
      const cut = Date.now();
      let healed = false;
      const heal = async () => {
        if (!healed)
          await execFileP('ip', ['-n', h1.ns, 'route', 'del', 'blackhole', `${lab.state.etcd.ip}/32`]);
        healed = true;
      };
      extra.push({ kill: () => void heal().catch(() => undefined) });
      // Host 1 misses these: b2 goes, a5 comes.
      await c2.call('DELETE', '/containers/b2?force=1');
      cts.delete('b2');
      await run(1, 'a5', 'na');
      // The others drop host 1 once its lease runs out; host 1 still forwards on what it had.
      for (const c of [c2, c3])
        await until('host 1 withdrawn', async () => !(await vteps(c)).includes(h1.ip), TTL * 1000 + 2000);
      t.diagnostic(`host 1 withdrawn by the others ${Date.now() - cut} ms after the partition`);
      // Its API says the store is away, and its datapath's own views still answer.
      await assert.rejects(c1.call('GET', '/networks'), (err) => isVxError(err, 'ERR_STORE_UNAVAILABLE'));
      const kept = await fdbMacs(c1);
      assert.ok(kept.has(a(3).mac) && kept.has(a(2).mac), 'host 1 keeps its remote entries');
      assert.ok(kept.has(b2.mac), 'host 1 has not heard of b2 going');
      // And forwards on them: pings to a3 are encapsulated unicast towards host 3 (which, having
      // withdrawn host 1, drops them), not flooded.
      const before = await counters(c1, 'na');
      await pings(a(1).netns, a(3).ip);
      await pings(a(1).netns, a(3).ip);
      const after = await counters(c1, 'na');
      const unicast = (x: Record<string, number>) => (x.txPackets ?? 0) - (x.floodPackets ?? 0);
      assert.ok(unicast(after) - unicast(before) >= 2, JSON.stringify({ before, after }));
      // A compaction meanwhile: whatever host 1 watched from is gone, so it must take a snapshot.
      const rev = JSON.parse(
        await etcdctl(['endpoint', 'status', '-w', 'json'], {
          endpoint: `http://${lab.state.etcd.ip}:2379`,
          netns: lab.state.etcd.ns,
        }),
      )[0].Status.header.revision as number;
      await etcdctl(['compact', String(rev)], {
        endpoint: `http://${lab.state.etcd.ip}:2379`,
        netns: lab.state.etcd.ns,
      });
      await heal();
      const t1 = Date.now();
      await until(
        'host 1 to catch up: b2 gone, a5 there',
        async () => {
          const macs = await fdbMacs(c1);
          return !macs.has(b2.mac) && macs.has(cts.get('a5')!.mac);
        },
        20000,
      );
      for (const c of [c2, c3])
        await until(
          'host 1 back in the peers of the others',
          async () => (await vteps(c)).includes(h1.ip),
          20000,
        );
      t.diagnostic(`caught up and rejoined ${Date.now() - t1} ms after the partition healed`);
      await until(
        'a1 <-> a5',
        async () => (await pings(a(1).netns, cts.get('a5')!.ip)) && pings(cts.get('a5')!.netns, a(1).ip),
      );
      assert.equal((await c1.call<Info>('GET', '/info')).StoreStatus, 'available');
    },
  );

  await t.test(
    'etcd down: traffic flows, the API says the store is unavailable; writes resume after',
    async () => {
      const e = lab.state.etcd;
      process.kill(e.pid!, 'SIGKILL');
      const killed = Date.now();
      const during = pingStream(a(1).netns, a(3).ip);
      extra.push(during);
      const info = await until(
        'host 1 to report the store unavailable',
        async () => {
          const i = await c1.call<Info>('GET', '/info');
          return i.StoreStatus === 'unavailable' && i;
        },
        15000,
      );
      assert.match(info.StoreError ?? '', /ERR_STORE_UNAVAILABLE/);
      assert.equal(info.Networks, null);
      await assert.rejects(c2.call('POST', '/networks/create', { Name: 'late' }), (err) =>
        isVxError(err, 'ERR_STORE_UNAVAILABLE'),
      );
      assert.ok(await pings(cts.get('b1')!.netns, cts.get('b3')!.ip), 'b1 -> b3 while etcd is down');
      // Down for longer than the hosts' lease TTL: nothing is withdrawn meanwhile.
      while (Date.now() - killed < (TTL + 1) * 1000) await new Promise((r) => setTimeout(r, 100));
      for (const c of clients) assert.equal((await vteps(c)).length, 2);
      etcd2 = await startEtcd({
        netns: e.ns,
        clientUrl: `http://${e.ip}:2379`,
        peerUrl: `http://${e.ip}:2380`,
        dataDir: e.dataDir,
        name: 'vxlab',
      });
      for (const c of clients)
        await until(
          'the store available again',
          async () => (await c.call<Info>('GET', '/info')).StoreStatus === 'available',
          15000,
        );
      const { sent, received, lost } = await during.stop();
      t.diagnostic(`a1 -> a3 across the etcd restart: ${received}/${sent} answered`);
      assert.ok(sent >= 30);
      assert.equal(lost, 0, 'no ping lost while etcd was down');
      for (const c of clients) assert.equal((await vteps(c)).length, 2, 'every peer kept');
      // Writes work again, and a new endpoint reaches the other hosts through the resumed watches.
      await until('a network create', () =>
        c2.call('POST', '/networks/create', { Name: 'late' }).then(() => true),
      );
      await run(1, 'a4', 'na');
      await until('a1 to reach the new a4 on host 2', () => pings(a(1).netns, cts.get('a4')!.ip));
      // Host 3 learns a4 through its own resumed watch, which may lag host 1's by a moment.
      const t1 = Date.now();
      await until('a3 to reach the new a4', () => pings(a(3).netns, cts.get('a4')!.ip), 10000);
      t.diagnostic(`a3 reached a4 ${Date.now() - t1} ms after a1 did`);
    },
  );

  await t.test(
    `a host's namespace deleted: the others withdraw its peers within the TTL (${TTL} s)`,
    async () => {
      const h3 = hosts[2]!;
      for (const c of [c1, c2]) assert.ok((await vteps(c)).includes(h3.ip));
      await deleteNetns(h3.ns, { killProcesses: true });
      const t0 = Date.now();
      for (const c of [c1, c2])
        await until('host 3 withdrawn', async () => !(await vteps(c)).includes(h3.ip), 10000);
      const ms = Date.now() - t0;
      t.diagnostic(`host 3's namespace deleted: withdrawn everywhere after ${ms} ms`);
      assert.ok(ms <= TTL * 1000, `withdrawn after ${ms} ms`);
      assert.ok(await pings(a(1).netns, cts.get('a4')!.ip), 'hosts 1 and 2 go on');
    },
  );
});

test('daemon cluster flags: bad values fail with ERR_BAD_OPTION before anything runs', {
  skip,
}, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vxnet-cflags-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const entry = cliEntry();
  const daemon = (i: number, args: string[]) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const base = ['--state-dir', join(dir, String(i)), '--socket', join(dir, `${i}.sock`)];
      const child = spawn(process.execPath, [...entry.args, 'daemon', ...base, ...args], { cwd: entry.cwd });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      child.once('exit', (code) => resolve({ code, stderr }));
    });
  const cases: [string[], RegExp][] = [
    [['--cluster-store', 'etcd://127.0.0.1:1'], /ERR_BAD_OPTION: --cluster-store needs --cluster-advertise/],
    [['--host-ttl', '2s'], /ERR_BAD_OPTION: --host-ttl "2s" must be a whole number/],
    [['--host-ttl', '0'], /ERR_BAD_OPTION: --host-ttl must be an integer number of seconds from 1 to 3600/],
    [['--cluster-advertise', 'nosuchif0'], /ERR_BAD_OPTION: --cluster-advertise "nosuchif0": no interface/],
    [['--cluster-advertise', '10.0.0.300'], /ERR_BAD_IP/],
  ];
  const results = await Promise.all(cases.map(([args], i) => daemon(i, args)));
  for (const [i, r] of results.entries()) {
    assert.equal(r.code, 1, cases[i]![0].join(' '));
    assert.match(r.stderr, cases[i]![1]);
  }
});
