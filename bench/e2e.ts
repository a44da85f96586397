// npm run bench:e2e — TCP throughput and ping RTT between two containers on two simulated hosts
// (src/lab/pair.ts: a namespace per host, a veth underlay, br0 + a container per host), through
// the Linux kernel's VXLAN device (the baseline) and through vxnet, in the same run. Needs root.
//
// Method: for each implementation a fresh pair is built. e2e-tcp: iperf3 from container 1 to
// container 2 for SECONDS s, RUNS runs after a 1 s warm-up run; the median of the receiver's
// Gbit/s is kept. e2e-rtt: 500 pings at 5 ms intervals after 20 warm-up pings; p50 and p99 of
// the per-packet RTT. Everything is removed afterwards, also on failure.
// The kernel baseline keeps checksum offload on its veth underlay (as a NIC would finish them);
// with `ethtool -K ul0 tx off`, which a userspace peer needs, it ran ~2.7x slower here.
// vxnet variants: `vxnet tunnel` (src/lab/tunnel.ts) on both hosts, its TAP on br0; `vxnet` with
// the UDP underlay, `vxnet-raw` with the raw underlay, `vxnet-rt` with the UDP underlay and its I/O
// thread in SCHED_RR (--realtime 10). Case `encrypted` of `vxnet`: `--encrypt --key HEX`, the
// default mode (ESP AES-128-GCM as IP protocol 50, a raw socket read/written with
// recvmmsg/sendmmsg but no GSO/GRO), the containers' and TAPs' MTU lowered by the 29 bytes ESP
// takes (1421). Case `encrypted-udp`: `--esp-encap udp` (ESP in UDP 4500, RFC 3948, with UDP
// GSO/GRO), 37 bytes (1413). Each tunnel's drop counters are noted on
// stderr when it stops (a figure with drops behind it is suspect).
// `vxnet-cw1`: case `encrypted` with --crypto-workers 1.
// Usage: npm run bench:e2e [-- --json] [-- --only kernel-vxlan,vxnet,vxnet-raw,vxnet-rt,vxnet-cw1]
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { espOverhead } from '../src/crypto/esp.js';
import { ip } from '../src/kernel/exec.js';
import { execInNetns, spawnInNetns } from '../src/kernel/netns.js';
import { createPair, type Pair, type VtepKind } from '../src/lab/pair.js';
import { waitPing } from '../src/lab/traffic.js';
import { startPairTunnel, type Tunnel } from '../src/lab/tunnel.js';
import { median, note, percentile, record, report } from './lib.js';

const SECONDS = Number(process.env.VXNET_BENCH_SECONDS ?? 4);
const RUNS = Number(process.env.VXNET_BENCH_RUNS ?? 3);

/** An implementation under test: how to build its pair and start its VXLAN ports. */
export interface E2eImpl {
  name: string;
  cases: string[];
  vtep: [VtepKind, VtepKind];
  /** Starts the VXLAN ports on a pair built with `vtep`; returns how to stop them. */
  start?(pair: Pair, c: string): Promise<() => Promise<void>>;
}

const IMPLS: E2eImpl[] = [{ name: 'kernel-vxlan', cases: ['plain'], vtep: ['kernel', 'kernel'] }];

/** Registers another implementation (the vxnet variants add themselves here). */
export function addImpl(impl: E2eImpl): void {
  IMPLS.push(impl);
}

/** Starts `vxnet tunnel` on both hosts of `pair` and waits until the containers reach each other. */
async function startVxnet(
  pair: Pair,
  underlay: 'udp' | 'raw',
  extraArgs: string[] = [],
): Promise<() => Promise<void>> {
  const tunnels: Tunnel[] = [];
  const stop = async () => {
    for (const t of tunnels) {
      const x = await t.stop();
      const c = x.stats?.counters as { dropped?: number; drops?: Record<string, number> } | undefined;
      const drops = Object.entries(c?.drops ?? {}).filter(([, n]) => n > 0);
      note(
        `  ${t.ns} exit ${x.code ?? x.signal}; drops ${drops.length ? JSON.stringify(Object.fromEntries(drops)) : 'none'}`,
      );
    }
  };
  try {
    for (const i of [0, 1] as const) tunnels.push(await startPairTunnel(pair, i, { underlay, extraArgs }));
    await waitPing(pair.hosts[0].container, pair.hosts[1].overlayIp);
  } catch (e) {
    await stop();
    throw e;
  }
  return stop;
}

async function startEncrypted(
  pair: Pair,
  encap: 'ip' | 'udp',
  extra: string[] = [],
): Promise<() => Promise<void>> {
  // Of the 1450 a plain tunnel leaves, ESP in IP takes 29 bytes (1421), ESP in UDP 37 (1413).
  const mtu = pair.mtu - espOverhead({ udpEncap: encap === 'udp' });
  for (const [i, h] of pair.hosts.entries()) {
    await ip(['link', 'set', 'dev', 'eth0', 'mtu', String(mtu)], { netns: h.container, action: 'mtu' });
    await ip(['link', 'set', 'dev', `c${i + 1}p`, 'mtu', String(mtu)], { netns: h.ns, action: 'mtu' });
  }
  const key = randomBytes(32).toString('hex');
  const args = ['--encrypt', '--key', key, '--esp-encap', encap, '--mtu', String(mtu), ...extra];
  return startVxnet(pair, 'udp', args);
}

addImpl({
  name: 'vxnet',
  cases: ['plain', 'encrypted', 'encrypted-udp'],
  vtep: ['none', 'none'],
  start: (pair, c) =>
    c === 'plain' ? startVxnet(pair, 'udp') : startEncrypted(pair, c === 'encrypted' ? 'ip' : 'udp'),
});
// `encrypted` with one crypto helper thread taking half of each big seal batch (--crypto-workers 1).
addImpl({
  name: 'vxnet-cw1',
  cases: ['encrypted'],
  vtep: ['none', 'none'],
  start: (pair) => startEncrypted(pair, 'ip', ['--crypto-workers', '1']),
});
addImpl({
  name: 'vxnet-raw',
  cases: ['plain'],
  vtep: ['none', 'none'],
  start: (pair) => startVxnet(pair, 'raw'),
});
addImpl({
  name: 'vxnet-rt',
  cases: ['plain'],
  vtep: ['none', 'none'],
  start: (pair) => startVxnet(pair, 'udp', ['--realtime', '10']),
});

async function iperf(pair: Pair, seconds: number): Promise<number> {
  const [a, b] = pair.hosts;
  const server: ChildProcess = spawnInNetns(b.container, 'iperf3', ['-s', '-1'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 300));
    const out = await execInNetns(a.container, 'iperf3', ['-c', b.overlayIp, '-t', String(seconds), '-J'], {
      timeoutMs: (seconds + 20) * 1000,
    });
    const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
    return j.end.sum_received.bits_per_second / 1e9;
  } finally {
    server.kill('SIGKILL');
  }
}

async function rtts(pair: Pair, count: number): Promise<number[]> {
  const [a, b] = pair.hosts;
  await execInNetns(a.container, 'ping', ['-c', '20', '-i', '0.005', '-q', b.overlayIp]);
  const out = await execInNetns(a.container, 'ping', ['-c', String(count), '-i', '0.005', b.overlayIp], {
    timeoutMs: 60000,
  });
  return [...out.matchAll(/time=([0-9.]+) ms/g)].map((m) => Number(m[1]) * 1000);
}

async function measure(impl: E2eImpl, c: string): Promise<void> {
  const pair = await createPair({ vtep: impl.vtep });
  let stop: (() => Promise<void>) | undefined;
  try {
    stop = await impl.start?.(pair, c);
    await iperf(pair, 1);
    const gbits: number[] = [];
    for (let r = 0; r < RUNS; r++) gbits.push(await iperf(pair, SECONDS));
    record({ bench: 'e2e-tcp', case: c, impl: impl.name, value: median(gbits), unit: 'Gbit/s' });
    if (c === 'plain') {
      const xs = await rtts(pair, 500);
      record({ bench: 'e2e-rtt', case: 'p50', impl: impl.name, value: percentile(xs, 50), unit: 'us' });
      record({ bench: 'e2e-rtt', case: 'p99', impl: impl.name, value: percentile(xs, 99), unit: 'us' });
    }
  } finally {
    await stop?.();
    await pair.destroy();
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:e2e builds namespaces: run it as root');
  const onlyIdx = process.argv.indexOf('--only');
  const only = onlyIdx > 0 ? new Set(process.argv[onlyIdx + 1]?.split(',')) : undefined;
  // Cases first, implementations inside: the baseline and vxnet run back to back per case.
  for (const c of ['plain', 'encrypted', 'encrypted-udp']) {
    // The baseline last: report() compares every row of a group to its last one.
    const ordered = [
      ...IMPLS.filter((i) => i.name !== 'kernel-vxlan'),
      ...IMPLS.filter((i) => i.name === 'kernel-vxlan'),
    ];
    for (const impl of ordered) {
      if (!impl.cases.includes(c) || (only && !only.has(impl.name))) continue;
      note(`bench:e2e ${impl.name} ${c} ...`);
      // One implementation failing leaves the others' figures; the run still exits non-zero.
      await measure(impl, c).catch((e: unknown) => {
        note(`bench:e2e ${impl.name} ${c} failed: ${e instanceof Error ? e.message : String(e)}`);
        process.exitCode = 1;
      });
    }
  }
  report();
}

await main();
