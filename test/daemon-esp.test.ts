// Encrypted overlays on the daemon's TAP ports (`--vxlan-port tap`): two daemons on one store, a
// network created with `--opt encrypted` next to a plain one on the same hosts. On the underlay,
// the encrypted network's traffic is only ESP as IP protocol 50 (the default; its pinged pattern
// never appears in the bytes, and tshark, given the SAs derived from the store's key ring,
// decrypts it to VXLAN of the encrypted VNI with the pattern inside), the plain one's stays VXLAN
// on 4789 with its own VNI; the encrypted network's MTU gives room to ESP in IP (29 bytes).
// A key rotation (POST /keys/rotate) in the middle of a running TCP stream loses nothing (hash
// match), and afterwards the hosts send under the SA derived from the new key. Authentic ESP
// carrying VXLAN for the plain network is dropped and counted (espForPlain). Host 1 seals with one
// crypto helper thread (cryptoWorkers, `vxnet daemon --crypto-workers`). Needs root.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { Client } from '../src/cli/client.js';
import { type DerivedSa, deriveSa } from '../src/crypto/esp-sas.js';
import { startDaemon } from '../src/daemon/daemon.js';
import { KEY_RING, parseRing } from '../src/daemon/keys.js';
import { TapPorts } from '../src/daemon/tap-ports.js';
import { runIn } from '../src/lab/traffic.js';
import { capture } from './capture.js';
import { pings, root, sharedStore, twoHosts, until } from './daemon-host.js';

const PATTERN = '5ec7e75ec7e7a11ce0ddba11deadbeef';

interface Ct {
  Netns: string;
  NetworkSettings: { Networks: Record<string, { IPAddress: string; MacAddress: string }> };
}

function tshark(file: string, filter: string, fields: string[], sas: string[] = []): string[][] {
  const args = ['-n', '-r', file];
  if (sas.length > 0) args.push('-o', 'esp.enable_encryption_decode:TRUE');
  for (const row of sas) args.push('-o', `uat:esp_sa:${row}`);
  args.push('-Y', filter, '-T', 'fields', '-E', 'separator=|');
  for (const f of fields) args.push('-e', f);
  const out = execFileSync('tshark', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  return out ? out.split('\n').map((l) => l.split('|')) : [];
}

/** A Wireshark ESP SA table row (uat:esp_sa) for an SA derived as the daemons derive it. */
function uatRow(src: string, dst: string, sa: DerivedSa): string {
  const key = `0x${Buffer.concat([sa.key, sa.salt]).toString('hex')}`;
  const spi = `0x${sa.spi.toString(16).padStart(8, '0')}`;
  return `"IPv4","${src}","${dst}","${spi}","AES-GCM with 8 octet ICV [RFC4106]","${key}","NULL",""`;
}

/** ESP (RFC 4303/4106, ICV 8) sealing `inner` (a UDP datagram: next header 17) under `sa`, in JS. */
function sealEsp(sa: DerivedSa, seq: number, inner: Buffer): Buffer {
  const pad = (4 - ((inner.length + 2) % 4)) % 4;
  const plain = Buffer.concat([
    inner,
    Buffer.from([...Array(pad).keys()].map((i) => i + 1)),
    Buffer.from([pad, 17]),
  ]);
  const head = Buffer.alloc(16);
  head.writeUInt32BE(sa.spi, 0);
  head.writeUInt32BE(seq, 4);
  head.writeUInt32BE(0xc0ffee, 12);
  const c = createCipheriv('aes-128-gcm', sa.key, Buffer.concat([sa.salt, head.subarray(8)]), {
    authTagLength: 8,
  });
  c.setAAD(head.subarray(0, 8));
  return Buffer.concat([head, c.update(plain), c.final(), c.getAuthTag()]);
}

// A TCP stream paced over `ms` milliseconds (so a rotation lands in its middle), hashed both ends.
const RECEIVER = `
const net = require('node:net'), { createHash } = require('node:crypto');
const h = createHash('sha256'); let n = 0;
const srv = net.createServer((s) => {
  s.on('data', (d) => { h.update(d); n += d.length; });
  s.on('close', () => { console.log(JSON.stringify({ bytes: n, sha256: h.digest('hex') })); srv.close(); });
});
srv.listen(Number(process.argv[1]), () => console.error('listening'));`;
const SENDER = `
const net = require('node:net'), { createHash, randomBytes } = require('node:crypto');
const [host, port, ms] = process.argv.slice(1);
const h = createHash('sha256'); let n = 0; const end = Date.now() + Number(ms);
const s = net.connect(Number(port), host, () => {
  const tick = () => {
    if (Date.now() >= end) { s.end(() => console.log(JSON.stringify({ bytes: n, sha256: h.digest('hex') }))); return; }
    const b = randomBytes(64 * 1024); h.update(b); n += b.length;
    if (s.write(b)) setTimeout(tick, 2); else s.once('drain', tick);
  };
  tick();
});
s.on('error', (e) => { console.error(String(e)); process.exit(2); });`;

test('daemons on TAP ports: an encrypted network next to a plain one; key rotation under a TCP stream loses nothing', {
  skip: root ? false : 'needs root (network namespaces)',
}, async (t) => {
  const {
    hosts,
    store,
    daemons,
    first: kill,
  } = await twoHosts(t, { ns: 'vxeh', id: 'e', subnet: '192.168.213', dir: 'vxnet-esp' });
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
        // Host 1 (the stream's sender) by the daemon's own options, with one crypto helper thread.
        ...(h === hosts[0]
          ? { cryptoWorkers: 1 }
          : { ports: new TapPorts({ hostNetns: h.ns, local: h.ip }) }),
        log: pino({ level: process.env.VXNET_TEST_LOG ?? 'silent' }),
      }),
    );
  }
  const [c1, c2] = hosts.map((h) => new Client(join(h.dir, 'vxnet.sock'))) as [Client, Client];
  await c1.call('POST', '/networks/create', {
    Name: 'sec',
    Options: { encrypted: '' },
    IPAM: { Config: [{ Subnet: '10.91.0.0/24' }] },
  });
  await c1.call('POST', '/networks/create', { Name: 'pl', IPAM: { Config: [{ Subnet: '10.92.0.0/24' }] } });
  const run = async (c: Client, name: string, net: string) => {
    await c.call('POST', `/containers/create?name=${name}`, {
      Cmd: ['sleep', '300'],
      HostConfig: { NetworkMode: net },
    });
    await c.call('POST', `/containers/${name}/start`);
    const ct = await c.call<Ct>('GET', `/containers/${name}/json`);
    return { ns: ct.Netns, ...ct.NetworkSettings.Networks[net]! };
  };
  const a = await run(c1, 'a', 'sec');
  const b = await run(c2, 'b', 'sec');
  const p = await run(c1, 'p', 'pl');
  const q = await run(c2, 'q', 'pl');
  const sec = await c1.call<{ VNI: number; MTU: number }>('GET', '/networks/sec');
  const pl = await c1.call<{ VNI: number; MTU: number }>('GET', '/networks/pl');
  assert.equal(sec.MTU, pl.MTU - 29, 'the encrypted network leaves room for ESP in IP (29 bytes)');
  await until(
    'host 1 to program b and q',
    async () => {
      const rows = await c1.call<{ mac: string }[]>('GET', '/fdb');
      return rows.some((r) => r.mac === b.MacAddress) && rows.some((r) => r.mac === q.MacAddress);
    },
    200,
  );
  assert.ok(await pings(a.ns, b.IPAddress), 'a reaches b on the encrypted network');
  assert.ok(await pings(p.ns, q.IPAddress), 'p reaches q on the plain network');

  // The underlay, seen on host 1's veth.
  const pcap = join(hosts[0]!.dir, 'ul.pcap');
  let cap = await capture(hosts[0]!.ns, 'ul0', pcap, 'udp or ip proto 50');
  kill.push(cap.kill);
  for (const [from, to] of [
    [a, b],
    [p, q],
  ] as const) {
    const r = await runIn(from.ns, 'ping', [
      '-c',
      '3',
      '-i',
      '0.2',
      '-s',
      '300',
      '-p',
      PATTERN,
      to.IPAddress,
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  }
  await cap.stop();
  const bytes = readFileSync(pcap);
  const pattern = Buffer.from(PATTERN, 'hex');
  const vnis = tshark(pcap, 'vxlan', ['vxlan.vni']).map((r) => Number(r[0]));
  assert.ok(vnis.length >= 6, `plain VXLAN seen: ${vnis.length}`);
  assert.deepEqual([...new Set(vnis)], [pl.VNI], 'only the plain network crosses as cleartext VXLAN');
  assert.equal(tshark(pcap, 'udp.port == 4500', ['frame.number']).length, 0, 'no ESP in UDP by default');
  assert.ok(
    tshark(pcap, 'ip.proto == 50', ['esp.spi']).length >= 6,
    'the encrypted network crosses as IP protocol 50',
  );
  // tshark decrypts it with the SAs derived from the store's key ring: VXLAN of `sec` inside.
  const ring = parseRing((await store.get(KEY_RING))!.value);
  const k0 = ring.keys.find((k) => k.id === ring.primary)!;
  const [ip1, ip2] = [hosts[0]!.ip, hosts[1]!.ip];
  const sa = (src: string, dst: string) => deriveSa(Buffer.from(k0.secret, 'base64'), k0.id, src, dst);
  const rows = tshark(
    pcap,
    'ip.proto == 50',
    ['esp.spi', 'vxlan.vni', 'data.data'],
    [uatRow(ip1, ip2, sa(ip1, ip2)), uatRow(ip2, ip1, sa(ip2, ip1))],
  );
  assert.ok(rows.length >= 6);
  for (const x of rows)
    assert.equal(Number(x[1]), sec.VNI, `decrypted to VXLAN of sec: ${JSON.stringify(rows)}`);
  const pat = PATTERN.toLowerCase();
  assert.ok(rows.filter((x) => x[2]?.includes(pat)).length >= 4, 'the pinged pattern, decrypted');
  // The pattern shows up only in the plain network's packets (ping pads with it): count them.
  let seen = 0;
  for (let at = bytes.indexOf(pattern); at >= 0; at = bytes.indexOf(pattern, at + 1)) seen++;
  const plainPings = tshark(pcap, `vxlan && icmp`, ['frame.number']).length;
  assert.ok(plainPings >= 6);
  assert.ok(seen > 0 && seen <= plainPings * 20, 'the pattern appears in plain pings only');

  // Rotation under a running TCP stream.
  const ring0 = parseRing((await store.get(KEY_RING))!.value);
  const rx = spawn('ip', ['netns', 'exec', b.ns, process.execPath, '-e', RECEIVER, '5301'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  kill.push(() => rx.kill('SIGKILL'));
  let rxOut = '';
  rx.stdout!.on('data', (d: Buffer) => {
    rxOut += d.toString();
  });
  const rxDone = new Promise((r) => rx.once('close', r));
  await new Promise<void>((resolve, reject) => {
    let err = '';
    rx.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('listening')) resolve();
    });
    rx.once('close', () => reject(new Error(`receiver: ${err}`)));
  });
  const tx = runIn(a.ns, process.execPath, ['-e', SENDER, b.IPAddress, '5301', '6000'], { timeoutMs: 60000 });
  let txEnded = false;
  void tx.then(() => {
    txEnded = true;
  });
  const secStats = async () =>
    (await c2.call<{ name: string; counters: Record<string, number> }[]>('GET', '/stats?network=sec')).find(
      (x) => x.name === 'sec',
    );
  const opened = async () => (await secStats())?.counters['esp.opened'] ?? 0;
  const before = await opened();
  // Before the peers knew each other some ESP arrived for SAs not installed yet (badSpi): a baseline.
  const st0 = (await secStats())!.counters;
  await until('the stream to flow', async () => (await opened()) > before + 500, 200);
  const r = await c1.call<{ rotated: number; primary: number }>('POST', '/keys/rotate', {
    TimeoutMs: 20_000,
  });
  assert.equal(txEnded, false, 'the rotation completed while the stream was running');
  const sent = JSON.parse((await tx).stdout) as { bytes: number; sha256: string };
  await rxDone;
  const received = JSON.parse(rxOut) as { bytes: number; sha256: string };
  assert.ok(sent.bytes > 1 << 20, `streamed ${sent.bytes} bytes`);
  assert.deepEqual(received, sent, 'no byte lost or changed across the rotation');
  assert.notEqual(r.primary, ring0.primary);
  // The sender's big seal batches were split with its crypto helper (--crypto-workers 1).
  const c1Sec = (
    await c1.call<{ name: string; counters: Record<string, number> }[]>('GET', '/stats?network=sec')
  ).find((x) => x.name === 'sec')!.counters;
  assert.ok((c1Sec['esp.helperSlices'] ?? 0) > 0, JSON.stringify(c1Sec));
  assert.equal(c1Sec['esp.helperFailed'], 0);

  // Afterwards a -> b is sealed under the SA derived from the new primary key.
  const ring1 = parseRing((await store.get(KEY_RING))!.value);
  const key = ring1.keys.find((k) => k.id === ring1.primary)!;
  const spi = deriveSa(Buffer.from(key.secret, 'base64'), key.id, hosts[0]!.ip, hosts[1]!.ip).spi;
  cap = await capture(hosts[0]!.ns, 'ul0', pcap, `ip proto 50 and src host ${hosts[0]!.ip}`);
  kill.push(cap.kill);
  assert.ok(await pings(a.ns, b.IPAddress));
  await cap.stop();
  const spis = tshark(pcap, 'esp', ['esp.spi']).map((x) => Number(x[0]));
  assert.ok(spis.length > 0);
  assert.deepEqual([...new Set(spis)], [spi], 'sent under the new key');
  const st = (await secStats())!.counters;
  for (const k of [
    'esp.drops.auth',
    'esp.drops.badSpi',
    'esp.drops.replay',
    'esp.drops.noSa',
    'drops.cleartext',
  ])
    assert.equal(st[k], st0[k], `${k} did not grow across the rotation: ${JSON.stringify(st)}`);

  // Authentic ESP (host 2's SA to host 1, current key) carrying VXLAN for the plain network: the
  // mirror image of cleartext on an encrypted network, dropped and counted on the plain network.
  // Last: its sequence number moves host 1's replay window for host 2 far ahead.
  const vxlan = Buffer.alloc(8 + 8 + 14 + 28);
  vxlan.writeUInt16BE(4789, 2);
  vxlan.writeUInt16BE(vxlan.length, 4);
  vxlan[8] = 0x08;
  vxlan.writeUIntBE(pl.VNI, 12, 3);
  Buffer.from(p.MacAddress.replaceAll(':', ''), 'hex').copy(vxlan, 16);
  Buffer.from(q.MacAddress.replaceAll(':', ''), 'hex').copy(vxlan, 22);
  vxlan.writeUInt16BE(0x0800, 28);
  vxlan[30] = 0x45;
  const forged = sealEsp(
    deriveSa(Buffer.from(key.secret, 'base64'), key.id, hosts[1]!.ip, hosts[0]!.ip),
    0x40000000,
    vxlan,
  );
  const plStats = async () =>
    (await c1.call<{ name: string; counters: Record<string, number> }[]>('GET', '/stats?network=pl')).find(
      (x) => x.name === 'pl',
    )!.counters;
  const pl0 = await plStats();
  const send = `import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_RAW,50)\ns.sendto(bytes.fromhex(sys.argv[1]),(sys.argv[2],0))`;
  const sent2 = await runIn(hosts[1]!.ns, 'python3', ['-c', send, forged.toString('hex'), hosts[0]!.ip]);
  assert.equal(sent2.code, 0, sent2.stderr);
  await until(
    'the forged ESP to be counted',
    async () => ((await plStats())['drops.espForPlain'] ?? 0) > (pl0['drops.espForPlain'] ?? 0),
    100,
  );
  const pl1 = await plStats();
  assert.equal((pl1['drops.espForPlain'] ?? 0) - (pl0['drops.espForPlain'] ?? 0), 1, JSON.stringify(pl1));
});
