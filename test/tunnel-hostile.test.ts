// Hostile datagrams at `vxnet tunnel`'s data-path port while a ping keeps flowing through it.
// Host 1 of a lab pair runs vxnet, host 2 the kernel's VXLAN (the ping's far end). Datagrams come
// from host 2's namespace (a configured peer's address) and from a third namespace that is no
// peer: truncated VXLAN headers, truncated inner Ethernet, bad flags, non-zero reserved bits,
// wrong VNIs, oversized frames, random bytes (each classified by the slow reference below), and
// well-formed VXLAN from the stranger. Each class must show up, exactly, under its drop reason in
// the counters JSON (SIGUSR1), and the ping must lose at most 2 packets. And a TAP deleted under a
// running tunnel ends it with ERR_IO_WORKER and exit code 1, not silently. Needs root.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { VXLAN_FLAG_I, VXLAN_HLEN } from '../assembly/constants.js';
import { ip } from '../src/kernel/exec.js';
import { addStranger, createPair, overlayMac } from '../src/lab/pair.js';
import { ping, sendDatagrams, startPing, waitPing } from '../src/lab/traffic.js';
import {
  drops,
  startPairTunnel,
  stopAllTunnels,
  type Tunnel,
  type TunnelExit,
  type TunnelStats,
  totalDrops,
} from '../src/lab/tunnel.js';

const root = process.getuid?.() === 0;
const skip = root ? false : 'needs root (network namespaces)';
const VNI = 256;
const ETH_HLEN = 14;

after(stopAllTunnels);

/** Deterministic bytes (xorshift32), so a failure can be replayed. */
function prng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

function vxlanHeader(
  vni: number,
  flags = VXLAN_FLAG_I,
  reserved: [number, number, number, number] = [0, 0, 0, 0],
) {
  const [r1, r2, r3, r7] = reserved;
  return Uint8Array.of(flags, r1, r2, r3, (vni >>> 16) & 0xff, (vni >>> 8) & 0xff, vni & 0xff, r7);
}

const macBytes = (mac: string) => mac.split(':').map((x) => Number.parseInt(x, 16));

/** An Ethernet frame of `len` bytes to `dst` from a MAC no one uses, IPv4 ethertype, zero payload. */
function frame(dst: string, len: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set(macBytes(dst).slice(0, Math.min(6, len)));
  if (len >= 12) f.set([0x02, 0x99, 0x00, 0x00, 0x00, 0x01], 6);
  if (len >= 14) f.set([0x08, 0x00], 12);
  return f;
}

const cat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

/**
 * The slow reference: why a datagram from a configured peer must be dropped (RFC 7348 section 5,
 * checked in the order the header is read), or undefined if it is deliverable.
 */
function expectedDrop(d: Uint8Array, mtu: number): string | undefined {
  if (d.length < VXLAN_HLEN) return 'truncated';
  if (d[0] !== VXLAN_FLAG_I) return 'vxlan-flags';
  if (d[1] || d[2] || d[3] || d[7]) return 'vxlan-reserved';
  if (((d[4]! << 16) | (d[5]! << 8) | d[6]!) !== VNI) return 'unknown-vni';
  if (d.length - VXLAN_HLEN < ETH_HLEN) return 'truncated';
  // Room for an 802.1Q tag, as the kernel allows a bridge port (is_skb_forwardable).
  if (d.length - VXLAN_HLEN > mtu + ETH_HLEN + 4) return 'oversize';
  return undefined;
}

/** The counters that see every datagram (global), else the VNI's. */
const all = (s: TunnelStats) => s.global ?? s.counters;

/** Polls the counters until `done` holds (or 5 s pass) and returns the last reading. */
async function settle(tun: Tunnel, done: (s: TunnelStats) => boolean): Promise<TunnelStats> {
  const end = Date.now() + 5000;
  for (;;) {
    const s = await tun.stats();
    if (done(s) || Date.now() > end) return s;
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('hostile datagrams are dropped under their reasons while a ping keeps flowing', {
  skip,
  timeout: 90000,
}, async () => {
  const pair = await createPair({ vni: VNI, vtep: ['none', 'kernel'] });
  try {
    const [a, b] = pair.hosts;
    const stranger = await addStranger(pair, 0);
    const tun = await startPairTunnel(pair, 0, { underlay: 'udp' });
    let exit: TunnelExit;
    try {
      await waitPing(b.container, a.overlayIp).catch(async (e: Error) => {
        throw new Error(`${e.message}; tunnel counters: ${JSON.stringify(await tun.stats())}`);
      });
      const dst = overlayMac(a.overlayIp);
      const peerOf = (s: TunnelStats) => s.peers.find((p) => p.addr === b.underlayIp)?.counters ?? {};
      const ok = (n: number) => cat(vxlanHeader(VNI), frame(dst, n));
      let before: TunnelStats;
      /**
       * Sends one class of datagrams from `ns` and checks that each is counted once under its
       * reason (`reason`, or the reference's per datagram; 'any': under some reason).
       */
      const check = async (name: string, ns: string, datagrams: Uint8Array[], reason?: string) => {
        const want = new Map<string, number>();
        for (const d of datagrams) {
          const r = reason ?? expectedDrop(d, pair.mtu)!;
          want.set(r, (want.get(r) ?? 0) + 1);
        }
        const base = before;
        const delta = (s: TunnelStats, r: string) =>
          r === 'any' ? totalDrops(all(s)) - totalDrops(all(base)) : drops(all(s), r) - drops(all(base), r);
        await sendDatagrams(ns, a.underlayIp, pair.port, datagrams);
        const now = await settle(tun, (s) => [...want].every(([r, n]) => delta(s, r) >= n));
        before = now;
        for (const [r, n] of want) assert.equal(delta(now, r), n, `${name}: drops under ${r}`);
        assert.equal(
          totalDrops(all(now)) - totalDrops(all(base)),
          datagrams.length,
          `${name}: no other drops; ${JSON.stringify(all(now))}`,
        );
        // Drops of datagrams from the configured peer are also the peer's.
        if (ns === b.ns)
          assert.equal(
            totalDrops(peerOf(now)) - totalDrops(peerOf(base)),
            datagrams.length,
            `${name}: peer's`,
          );
      };
      const rnd = prng(0x5eed);
      const randomBytes: Uint8Array[] = [];
      while (randomBytes.length < 64) {
        const d = Uint8Array.from({ length: 1 + rnd(1400) }, () => rnd(256));
        // Some get past the flags (and the reserved bits) to reach the later checks.
        if (randomBytes.length % 4 === 0) d[0] = VXLAN_FLAG_I;
        if (randomBytes.length % 8 === 0 && d.length >= VXLAN_HLEN)
          d.set([VXLAN_FLAG_I, 0, 0, 0, d[4]!, d[5]!, d[6]!, 0]);
        if (expectedDrop(d, pair.mtu) !== undefined) randomBytes.push(d);
      }
      const reserved: [number, number, number, number][] = [
        [1, 0, 0, 0],
        [0, 0x80, 0, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 0xff],
      ];
      // The ping runs through the whole attack, 0.02 s apart.
      const pinger = startPing(b.container, a.overlayIp, { intervalS: 0.02 });
      before = await tun.stats();
      const short = [0, 1, 4, 7].map((n) => new Uint8Array(n).fill(VXLAN_FLAG_I));
      await check('header shorter than 8 bytes', b.ns, short, 'truncated');
      await check('VXLAN ok, inner Ethernet truncated', b.ns, [0, 1, 6, 13].map(ok), 'truncated');
      const flags = [0x00, 0x0c, 0x88, 0xff, 0x09].map((f) => cat(vxlanHeader(VNI, f), frame(dst, 60)));
      await check('bad flags', b.ns, flags, 'vxlan-flags');
      const resv = reserved.map((r) => cat(vxlanHeader(VNI, VXLAN_FLAG_I, r), frame(dst, 60)));
      await check('non-zero reserved bits', b.ns, resv, 'vxlan-reserved');
      const vnis = [0, VNI + 1, 0xffffff].map((v) => cat(vxlanHeader(v), frame(dst, 60)));
      await check('wrong VNI', b.ns, vnis, 'unknown-vni');
      await check('random bytes', b.ns, randomBytes);
      await check(
        'well-formed VXLAN from a stranger',
        stranger.ns,
        [ok(60), ok(98), ok(1000)],
        'unknown-peer',
      );
      // Garbage from the stranger: dropped too (the reason depends on which check sees it first).
      const garbage = [
        new Uint8Array(3),
        cat(vxlanHeader(VNI, 0), frame(dst, 60)),
        ...randomBytes.slice(0, 8),
      ];
      await check('garbage from a stranger', stranger.ns, garbage, 'any');
      const oversize = [pair.mtu + ETH_HLEN + 4 + 1, pair.mtu + 100, 4000, 9000, 65000].map(ok);
      await check('oversized inner frames', b.ns, oversize, 'oversize');
      const p = await pinger.stop();
      assert.ok(p.sent - p.received <= 2, `ping through the attack lost ${p.sent - p.received} of ${p.sent}`);
      assert.equal((await tun.stats()).peers.length, 1, 'no peer learned from the stranger');
    } finally {
      exit = await tun.stop();
    }
    assert.equal(exit.code, 0, `the tunnel survived and exited cleanly; stderr: ${tun.log()}`);
  } finally {
    await pair.destroy();
  }
});

test('its TAP deleted from outside: vxnet tunnel says why and exits non-zero', {
  skip,
  timeout: 60000,
}, async () => {
  const pair = await createPair({ vni: VNI, vtep: ['none', 'kernel'] });
  try {
    const [a, b] = pair.hosts;
    const tun = await startPairTunnel(pair, 0, {});
    await waitPing(b.container, a.overlayIp);
    await ip(['link', 'del', 'dev', tun.name], { netns: a.ns, action: 'delete the tunnel TAP' });
    // Traffic towards it makes the kernel answer the TAP's reads with an error (if it has not yet).
    await ping(b.container, a.overlayIp, { count: 2, intervalS: 0.05, waitS: 1 });
    const exit = await tun.stop({ graceMs: 10000 });
    assert.equal(exit.code, 1, `exit code; stderr: ${tun.log()}`);
    assert.match(tun.log(), /vxnet: ERR_IO_WORKER: .*TAP "vx0"/);
    assert.ok(exit.stats, 'the final counters are still printed');
  } finally {
    await pair.destroy();
  }
});
