// bench/io.ts: which kernel I/O mechanism moves packets fastest between a TAP, WASM memory and
// UDP on this machine (issue 4 asks for the choice by measurement).
//
// Method (one run, root, about 80 s; `--only=udp|raw|veth|veth-<impl>|<impl>` runs one part):
// 1. `udp-loopback` (case `1400`): one thread sends 64 datagrams of 1400 B to a socket on loopback
//    and receives them back, repeatedly: koffi sendmmsg/recvmmsg straight from WASM memory
//    (`mmsg`, batch 64) vs node:dgram (`dgram`, baseline). Median of 5 runs of 300 ms.
// 2. `raw-send` (case `1400`, root): 64 hand-built IPv4/UDP packets per call to a socket on
//    loopback: RawSender (koffi SOCK_RAW + sendmmsg, batch 64) vs the `raw-socket` package (one
//    send per libuv wake-up, Buffer over WASM memory, 20000 sends per run), next to UdpBind's own
//    sendmmsg, and UdpBind with UDP GSO (8 buffers of 44 segments per call) (baseline: udp-sendmmsg).
//    Median of the runs.
// 3. `io-forward` (case `tcp`): two namespaces, each with a TAP (10.77.x.1 and .2, MTU 1450); a
//    copy forwarder in this process (no VXLAN, no WASM pipeline) carries each TAP's frames to the
//    other side's UDP socket on loopback and back; iperf3 TCP from one namespace to the other for
//    3 s, one run per mechanism (Gbit/s as iperf3's receiver reports it); before it, `io-rtt`
//    (case `p50`): the median of 190 ping RTTs through the same forwarder, idle otherwise:
//    - `dgram-readsync` (baseline): TAP readiness from epoll, fs.readSync until EAGAIN, dgram out,
//      fs.writeSync in (the plain-JS forwarder of FACTS.md);
//    - `koffi-loop`: the seams (TapDevice/UdpBind batches) driven on the main event loop by
//      EventLoopDriver (epoll_wait parked on one libuv pool thread);
//    - `koffi-worker`: the same pumps in one I/O worker blocking in epoll_wait;
//    - `koffi-2workers`: one I/O worker per side;
//    - `*-vnet`: each of the three with IFF_VNET_HDR + TUNSETOFFLOAD (CSUM, TSO4/6): TSO frames
//      up to 64 KB cross as one datagram (loopback MTU 64 KB) - the ceiling once segmentation and
//      UDP GSO/GRO amortise the syscalls, not a VXLAN figure.
// 4. `io-forward` (case `tcp-veth1500`): the realistic underlay. Two host namespaces joined by a
//    veth (MTU 1500, GRO on), a forwarder process inside each (bench/io/host.ts, runBlocking on
//    its only thread), TAP MTU 1400, iperf3 TCP 3 s between the TAPs:
//    - `tso`: IFF_VNET_HDR + TSO; each TSO frame is cut into MSS segments in JS (header area +
//      payload in place), sent with UdpBind.sendGather + UDP_SEGMENT; the receiver has UDP_GRO and
//      coalesces each GRO'd buffer back into one TSO frame (one TAP write per ~64 KB);
//    - `plain`: one frame per datagram, recvmmsg/sendmmsg batches, one TAP write per frame;
//    - `kernel-vxlan` (baseline): the kernel's vxlan device on the same veth.
//    Before iperf3, `io-rtt` (case `p50-veth1500`): median ping RTT as in 3.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { once } from 'node:events';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { DESC_ADDR, DESC_AUX, DESC_LEN, DESC_PTR } from '../assembly/constants.js';
import { PacketBatch } from '../src/io/batch.js';
import { EventLoopDriver, type Pump } from '../src/io/poller.js';
import { RawSender } from '../src/io/raw.js';
import { writeSockaddr } from '../src/io/sockaddr.js';
import { TapDevice, TSO_MAX_FRAME } from '../src/io/tap.js';
import { UdpBind } from '../src/io/udp.js';
import { IoWorker } from '../src/io/worker.js';
import { core } from '../src/wasm/module.js';
import { type HostHandle, hostPumps } from './io/forward.js';
import { median, note, rate, record, report } from './lib.js';

const require = createRequire(import.meta.url);
const rawSocket = require('raw-socket');

const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7);

async function udpLoopback(): Promise<void> {
  const a = UdpBind.open({ address: '127.0.0.1', port: 0, sndbuf: 4 << 20 });
  const b = UdpBind.open({ address: '127.0.0.1', port: 0, rcvbuf: 4 << 20 });
  const tx = new PacketBatch({ capacity: 64 });
  const rx = new PacketBatch({ capacity: 64 });
  const dst = core().alloc(32);
  writeSockaddr(core().u8(), dst, '127.0.0.1', b.localAddress().port);
  const dv = core().dv();
  for (let i = 0; i < 64; i++) {
    dv.setUint32(tx.desc(i) + DESC_PTR, tx.frame(i), true);
    dv.setUint32(tx.desc(i) + DESC_LEN, 1400, true);
    dv.setUint32(tx.desc(i) + DESC_ADDR, dst, true);
  }
  const mmsg = rate(() => {
    a.sendBatch(tx.descs, 64);
    let got = 0;
    while (got < 64) got += b.recvBatch(rx);
  }, 64);
  a.close();
  b.close();
  record({ bench: 'udp-loopback', case: '1400', impl: 'mmsg', value: mmsg / 1e6, unit: 'Mdgram/s' });

  const s = dgram.createSocket('udp4');
  const r = dgram.createSocket('udp4');
  r.bind(0, '127.0.0.1');
  await once(r, 'listening');
  const port = r.address().port;
  const payload = Buffer.alloc(1400);
  const runs: number[] = [];
  for (let run = 0; run < 6; run++) {
    let got = 0;
    const t0 = process.hrtime.bigint();
    const end = t0 + 300_000_000n;
    while (process.hrtime.bigint() < end) {
      const wait = new Promise<void>((resolve) => {
        let n = 0;
        const on = () => {
          if (++n === 64) {
            r.off('message', on);
            resolve();
          }
        };
        r.on('message', on);
      });
      for (let i = 0; i < 64; i++) s.send(payload, port, '127.0.0.1');
      await wait;
      got += 64;
    }
    if (run > 0) runs.push(got / (Number(process.hrtime.bigint() - t0) / 1e9));
  }
  s.close();
  r.close();
  runs.sort((x, y) => x - y);
  record({ bench: 'udp-loopback', case: '1400', impl: 'dgram', value: runs[2]! / 1e6, unit: 'Mdgram/s' });
}

/** Builds an IPv4/UDP packet (checksums zero: UDP checksum 0 means none on IPv4) at `at`. */
function rawPacket(u8: Uint8Array, at: number, dport: number, len: number): void {
  u8.fill(0, at, at + len);
  u8.set([0x45, 0, len >> 8, len & 0xff, 0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1], at);
  u8.set([0x9c, 0x40, dport >> 8, dport & 0xff, (len - 20) >> 8, (len - 20) & 0xff, 0, 0], at + 20);
}

async function rawSend(): Promise<void> {
  const sink = UdpBind.open({ address: '127.0.0.1', port: 0 });
  const port = sink.localAddress().port;
  const dst = core().alloc(32);
  writeSockaddr(core().u8(), dst, '127.0.0.1', port);
  const batch = new PacketBatch({ capacity: 64 });
  const dv = core().dv();
  for (let i = 0; i < 64; i++) {
    rawPacket(core().u8(), batch.frame(i), port, 1400);
    dv.setUint32(batch.desc(i) + DESC_PTR, batch.frame(i), true);
    dv.setUint32(batch.desc(i) + DESC_LEN, 1400, true);
    dv.setUint32(batch.desc(i) + DESC_ADDR, dst, true);
  }
  const raw = RawSender.open({});
  record({
    bench: 'raw-send',
    case: '1400',
    impl: 'koffi-sendmmsg',
    value: rate(() => raw.sendBatch(batch.descs, 64), 64) / 1e6,
    unit: 'Mpkt/s',
  });
  raw.close();

  const rs = rawSocket.createSocket({ protocol: rawSocket.Protocol.Raw ?? 255 });
  rs.setOption(rawSocket.SocketLevel.IPPROTO_IP, rawSocket.SocketOption.IP_HDRINCL, 1);
  const buf = Buffer.from(core().memory.buffer, batch.frame(0), 1400); // a view over WASM memory: no copy
  const runs: number[] = [];
  for (let run = 0; run < 4; run++) {
    const n = 20000;
    const t0 = process.hrtime.bigint();
    await new Promise<void>((resolve, reject) => {
      let done = 0;
      for (let i = 0; i < n; i++) {
        rs.send(buf, 0, 1400, '127.0.0.1', (err: Error | null) => {
          if (err) reject(err);
          else if (++done === n) resolve();
        });
      }
    });
    if (run > 0) runs.push(n / (Number(process.hrtime.bigint() - t0) / 1e9));
  }
  rs.close();
  runs.sort((a, b) => a - b);
  record({ bench: 'raw-send', case: '1400', impl: 'raw-socket', value: runs[1]! / 1e6, unit: 'Mpkt/s' });

  const u = UdpBind.open({ address: '127.0.0.1', port: 0 });
  // The same datagrams through UDP GSO: 8 buffers of 44 segments each per sendmmsg.
  const big = new PacketBatch({ capacity: 8, frameCapacity: 44 * 1372 });
  for (let i = 0; i < 8; i++) {
    dv.setUint32(big.desc(i) + DESC_PTR, big.frame(i), true);
    dv.setUint32(big.desc(i) + DESC_LEN, 44 * 1372, true);
    dv.setUint32(big.desc(i) + DESC_ADDR, dst, true);
    dv.setUint32(big.desc(i) + DESC_AUX, 1372, true);
  }
  record({
    bench: 'raw-send',
    case: '1400',
    impl: 'udp-gso',
    value: rate(() => u.sendBatch(big.descs, 8), 8 * 44) / 1e6,
    unit: 'Mpkt/s',
  });
  for (let i = 0; i < 64; i++) dv.setUint32(batch.desc(i) + DESC_LEN, 1372, true);
  record({
    bench: 'raw-send',
    case: '1400',
    impl: 'udp-sendmmsg',
    value: rate(() => u.sendBatch(batch.descs, 64), 64) / 1e6,
    unit: 'Mpkt/s',
  });
  u.close();
  sink.close();
}

// ---- Forwarder ---------------------------------------------------------------------------------
const sfx = randomBytes(3).toString('hex');
const NS = [`vxb-a-${sfx}`, `vxb-b-${sfx}`];
const IPS = ['10.77.0.1', '10.77.0.2'];
const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });

interface Side {
  tap: TapDevice;
  udp: UdpBind;
  handle: HostHandle;
}

function makeSides(vnetHdr: boolean): Side[] {
  const frameCapacity = vnetHdr ? TSO_MAX_FRAME : 2048;
  const sides = NS.map((ns, i) => {
    const tap = TapDevice.open({ name: `vxb${sfx}${i}`, vnetHdr });
    sh('ip', 'link', 'set', 'dev', tap.name, 'netns', ns);
    sh('ip', '-n', ns, 'link', 'set', 'dev', tap.name, 'mtu', '1450', 'gso_max_size', '64000', 'up');
    sh('ip', '-n', ns, 'addr', 'add', `${IPS[i]}/24`, 'dev', tap.name);
    const udp = UdpBind.open({ address: '127.0.0.1', port: 0, rcvbuf: 8 << 20, sndbuf: 8 << 20 });
    const fromTap = new PacketBatch({ capacity: 64, frameCapacity });
    const fromUdp = new PacketBatch({ capacity: 64, frameCapacity });
    return { tap, udp, fromTap, fromUdp, peer: core().alloc(32) };
  });
  return sides.map((s, i) => {
    writeSockaddr(core().u8(), s.peer, '127.0.0.1', sides[1 - i]!.udp.localAddress().port);
    const handle = {
      tap: s.tap.handle(),
      udp: s.udp.handle(),
      fromTap: s.fromTap.handle(),
      fromUdp: s.fromUdp.handle(),
      peer: s.peer,
    };
    return { tap: s.tap, udp: s.udp, handle };
  });
}

async function iperf(client = NS[0]!, server = NS[1]!, ip = IPS[1]!): Promise<number> {
  const port = String(5201 + Math.floor(Math.random() * 1000));
  const srv = spawn('ip', ['netns', 'exec', server, 'iperf3', '-s', '-1', '-p', port], { stdio: 'ignore' });
  try {
    await sleep(300);
    const out = await new Promise<string>((resolve, reject) => {
      const c = spawn('ip', ['netns', 'exec', client, 'iperf3', '-c', ip, '-p', port, '-t', '3', '-J']);
      let text = '';
      c.stdout.on('data', (d) => {
        text += d;
      });
      c.on('close', () => resolve(text));
      c.on('error', reject);
    });
    const j = JSON.parse(out);
    if (j.error) throw new Error(j.error);
    return j.end.sum_received.bits_per_second / 1e9;
  } finally {
    srv.kill();
  }
}

/** Median ping RTT (us) from NS[0] to IPS[1] through the forwarder: 200 pings, 5 ms apart. */
async function pingP50(client = NS[0]!, ip = IPS[1]!): Promise<number> {
  // Not execFileSync: the event-loop driver must keep running while ping waits for replies.
  const p = spawn('ip', ['netns', 'exec', client, 'ping', '-c', '200', '-i', '0.005', '-W', '1', ip]);
  let out = '';
  p.stdout.on('data', (d) => {
    out += d;
  });
  await once(p, 'close');
  const times = [...out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000);
  return times.length > 10 ? median(times.slice(10)) : Number.NaN;
}

// ---- Two hosts on a veth underlay (MTU 1500), a forwarder process inside each -------------------
const HOSTS = [`vxb-h1-${sfx}`, `vxb-h2-${sfx}`];
const UNDER = ['10.200.0.1', '10.200.0.2'];

function vethHosts(): void {
  for (const h of HOSTS) sh('ip', 'netns', 'add', h);
  sh(
    'ip',
    'link',
    'add',
    `vxu${sfx}0`,
    'netns',
    HOSTS[0]!,
    'type',
    'veth',
    'peer',
    'name',
    `vxu${sfx}1`,
    'netns',
    HOSTS[1]!,
  );
  HOSTS.forEach((h, i) => {
    sh('ip', '-n', h, 'addr', 'add', `${UNDER[i]}/24`, 'dev', `vxu${sfx}${i}`);
    sh('ip', '-n', h, 'link', 'set', 'dev', `vxu${sfx}${i}`, 'up');
    sh('ip', '-n', h, 'link', 'set', 'dev', 'lo', 'up');
    sh('ip', 'netns', 'exec', h, 'ethtool', '-K', `vxu${sfx}${i}`, 'gro', 'on');
  });
}

async function vethForward(impl: 'kernel-vxlan' | 'plain' | 'tso'): Promise<void> {
  const procs: ReturnType<typeof spawn>[] = [];
  try {
    if (impl === 'kernel-vxlan') {
      HOSTS.forEach((h, i) => {
        const dev = `vxu${sfx}${i}`;
        const vx = [
          'type',
          'vxlan',
          'id',
          '42',
          'local',
          UNDER[i]!,
          'remote',
          UNDER[1 - i]!,
          'dstport',
          '4789',
        ];
        sh('ip', '-n', h, 'link', 'add', 'vxk0', ...vx, 'dev', dev);
        sh('ip', '-n', h, 'link', 'set', 'vxk0', 'up');
        sh('ip', '-n', h, 'addr', 'add', `10.78.0.${i + 1}/24`, 'dev', 'vxk0');
      });
    } else {
      const file = new URL('./io/host.ts', import.meta.url).pathname;
      for (let i = 0; i < 2; i++) {
        const cfg = { mode: impl, tapIp: `10.78.0.${i + 1}/24`, local: UNDER[i], peer: UNDER[1 - i] };
        const p = spawn(
          'ip',
          ['netns', 'exec', HOSTS[i]!, process.execPath, '--import', 'tsx', file, JSON.stringify(cfg)],
          {
            stdio: ['ignore', 'pipe', 'inherit'],
          },
        );
        procs.push(p);
        await once(p.stdout!, 'data');
      }
    }
    const rtt = await pingP50(HOSTS[0]!, '10.78.0.2');
    record({ bench: 'io-rtt', case: 'p50-veth1500', impl, value: rtt, unit: 'us' });
    const gbps = await iperf(HOSTS[0]!, HOSTS[1]!, '10.78.0.2');
    record({ bench: 'io-forward', case: 'tcp-veth1500', impl, value: gbps, unit: 'Gbit/s' });
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    if (impl === 'kernel-vxlan')
      for (const h of HOSTS) spawn('ip', ['-n', h, 'link', 'del', 'vxk0'], { stdio: 'ignore' });
  }
}

/** Starts an I/O worker (bench/io/worker.ts) forwarding for `hosts`; returns its stop function. */
async function startWorker(hosts: HostHandle[]): Promise<() => Promise<unknown>> {
  const w = await IoWorker.start({
    file: new URL('./io/worker.ts', import.meta.url),
    data: hosts,
    memory: core().memory,
  });
  return () => w.stop();
}

function dgramPumps(sides: Side[]): { pumps: Pump[]; close: () => void } {
  const socks = sides.map(() => dgram.createSocket('udp4'));
  const pumps: Pump[] = [];
  sides.forEach((s, i) => {
    const sock = socks[i]!;
    sock.bind(0, '127.0.0.1');
    sock.on('message', (m) => {
      try {
        fs.writeSync(s.tap.fd, m);
      } catch {}
    });
    pumps.push({
      fd: s.tap.fd,
      pump() {
        const buf = Buffer.allocUnsafe(2048);
        try {
          const n = fs.readSync(s.tap.fd, buf, 0, 2048, null);
          sock.send(buf.subarray(0, n), socks[1 - i]!.address().port, '127.0.0.1');
          return 1;
        } catch {
          return 0;
        }
      },
    });
  });
  const close = () => {
    for (const s of socks) s.close();
  };
  return { pumps, close };
}

async function forwarder(impl: string): Promise<void> {
  const sides = makeSides(impl.endsWith('-vnet'));
  let stop: () => Promise<unknown> = async () => {};
  try {
    const mode = impl.replace(/-vnet$/, '');
    if (mode === 'dgram-readsync') {
      const { pumps, close } = dgramPumps(sides);
      await sleep(50);
      const d = new EventLoopDriver(pumps, { budget: 64 });
      d.start();
      stop = async () => {
        await d.stop();
        close();
      };
    } else if (mode === 'koffi-loop') {
      const d = new EventLoopDriver(
        sides.flatMap((s) => hostPumps(s.handle, core().memory)),
        { budget: 8 },
      );
      d.start();
      stop = () => d.stop();
    } else if (mode === 'koffi-worker') {
      stop = await startWorker(sides.map((s) => s.handle));
    } else {
      const stops = await Promise.all(sides.map((s) => startWorker([s.handle])));
      stop = async () => {
        await Promise.all(stops.map((f) => f()));
      };
    }
    record({ bench: 'io-rtt', case: 'p50', impl, value: await pingP50(), unit: 'us' });
    const gbps = await iperf();
    record({ bench: 'io-forward', case: 'tcp', impl, value: gbps, unit: 'Gbit/s' });
  } finally {
    await stop();
    for (const s of sides) {
      s.tap.close();
      s.udp.close();
    }
  }
}

async function main(): Promise<void> {
  if (!only || only === 'udp') await udpLoopback();
  if (only === 'udp') return report();
  if (process.getuid?.() !== 0) {
    note('raw-send and io-forward need root: skipped');
    return report();
  }
  if (!only || only === 'raw') await rawSend();
  if (only === 'raw') return report();
  if (!only || only.startsWith('veth')) {
    vethHosts();
    try {
      for (const impl of ['tso', 'plain', 'kernel-vxlan'] as const) {
        if (only && only !== 'veth' && only !== `veth-${impl}`) continue;
        note(`io-forward tcp-veth1500 ${impl} ...`);
        try {
          await vethForward(impl);
        } catch (e) {
          note(`io-forward ${impl} failed: ${(e as Error).message}`);
        }
      }
    } finally {
      for (const h of HOSTS) execFileSync('ip', ['netns', 'del', h], { stdio: 'ignore' });
    }
    if (only) return report();
  }
  for (const ns of NS) sh('ip', 'netns', 'add', ns);
  try {
    const impls = [
      'koffi-loop',
      'koffi-worker',
      'koffi-2workers',
      'koffi-loop-vnet',
      'koffi-worker-vnet',
      'koffi-2workers-vnet',
      'dgram-readsync',
    ];
    for (const impl of impls) {
      if (only && only !== impl) continue;
      note(`io-forward ${impl} ...`);
      try {
        await forwarder(impl);
      } catch (e) {
        note(`io-forward ${impl} failed: ${(e as Error).message}`);
      }
    }
  } finally {
    for (const ns of NS) execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
  report();
}

await main();
