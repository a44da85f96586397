// `vxnet tunnel` against the Linux kernel's VXLAN device, through the command line only: host 1 of
// a lab pair runs vxnet (its TAP on br0), host 2 the kernel's `vxlan` with the same VNI and port.
// Ping both ways (also full-MTU frames with DF), a TCP transfer both ways whose SHA-256 matches,
// the counters JSON on SIGUSR1, and a clean exit on SIGTERM (SIGINT for one) that removes the TAP. Variants: UDP
// underlay, raw underlay, IPv6 underlay (kernel with Linux's default UDPv6 checksums), and learning
// with no configured remote: the kernel sends each flow from its own UDP source port, yet exactly
// one peer (its address, at the VXLAN port) must be learned and answered. Needs root.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { netnsExists } from '../src/kernel/netns.js';
import { createPair, type PairOptions } from '../src/lab/pair.js';
import { ping, tcpTransfer, waitPing } from '../src/lab/traffic.js';
import {
  counter,
  drops,
  startPairTunnel,
  stopAllTunnels,
  type TunnelExit,
  type TunnelOptions,
  type TunnelStats,
  totalDrops,
} from '../src/lab/tunnel.js';

const root = process.getuid?.() === 0;
const skip = root ? false : 'needs root (network namespaces)';
const BYTES = 4 << 20;

after(stopAllTunnels);

async function interop(
  pairOpts: PairOptions,
  tunnelOpts: Partial<TunnelOptions>,
  stopWith: 'SIGTERM' | 'SIGINT' = 'SIGTERM',
): Promise<void> {
  const pair = await createPair({ ...pairOpts, vtep: ['none', 'kernel'] });
  try {
    const [a, b] = pair.hosts;
    const tun = await startPairTunnel(pair, 0, tunnelOpts);
    let exit: TunnelExit;
    try {
      // The kernel's side first: with learning and no --remote, vxnet knows its peer only from this.
      await waitPing(b.container, a.overlayIp).catch(async (e: Error) => {
        throw new Error(`${e.message}; tunnel counters: ${JSON.stringify(await tun.stats())}`);
      });
      // From here on nothing may be dropped (what arrived while starting up is not this test's).
      const s0 = await tun.stats();
      for (const [from, to] of [
        [a, b],
        [b, a],
      ] as const) {
        const p = await ping(from.container, to.overlayIp, { count: 5, intervalS: 0.02 });
        assert.equal(p.received, p.sent, `ping ${from.overlayIp} -> ${to.overlayIp}`);
        // The largest frame the overlay MTU allows, DF set: no fragmentation anywhere on the way.
        const full = await ping(from.container, to.overlayIp, {
          count: 2,
          intervalS: 0.02,
          size: pair.mtu - 28,
        });
        assert.equal(full.received, full.sent, `full-MTU ping ${from.overlayIp} -> ${to.overlayIp}`);
        const x = await tcpTransfer(from.container, to.container, to.overlayIp, { bytes: BYTES });
        assert.equal(x.received.bytes, BYTES, `TCP ${from.overlayIp} -> ${to.overlayIp}: bytes`);
        assert.equal(x.received.sha256, x.sent.sha256, `TCP ${from.overlayIp} -> ${to.overlayIp}: content`);
      }
      const s = await tun.stats();
      assert.equal(s.vni, pair.vni);
      // Both transfers crossed vxnet: at least BYTES of inner frames each way.
      assert.ok(counter(s.counters, 'txBytes') > BYTES, `txBytes ${JSON.stringify(s.counters)}`);
      assert.ok(counter(s.counters, 'rxBytes') > BYTES, `rxBytes ${JSON.stringify(s.counters)}`);
      // Without a remote, broadcasts have nowhere to go (learned peers get unicast only, as in
      // Linux's vxlan with no default destination): those are the only drops allowed then.
      const noRemote = tunnelOpts.remotes?.length === 0;
      const dropsOf = (x: TunnelStats) =>
        totalDrops(x.global ?? x.counters) - (noRemote ? drops(x.global ?? x.counters, 'no-peers') : 0);
      assert.equal(dropsOf(s) - dropsOf(s0), 0, `no drops: ${JSON.stringify(s.global ?? s.counters)}`);
      // One peer, at the VXLAN port, however many flows (source ports) the kernel used.
      assert.deepEqual(
        s.peers.map((p) => [p.addr, p.port]),
        [[b.underlayIp, pair.port]],
      );
      assert.ok(counter(s.peers[0]!.counters, 'rxPackets') > 0);
    } finally {
      exit = await tun.stop({ signal: stopWith });
    }
    assert.equal(exit.code, 0, `exit code after ${stopWith}; stderr: ${tun.log()}`);
    assert.equal(
      tun
        .log()
        .split('\n')
        .filter((l) => l === 'vxnet tunnel: ready').length,
      1,
      'one ready line',
    );
    assert.equal(exit.tapLeftBehind, false, 'the TAP is removed on SIGTERM');
    assert.ok(exit.stats, 'counters printed before exit');
  } finally {
    await pair.destroy();
    assert.equal(netnsExists(pair.hosts[0].ns), false);
  }
}

test('vxnet tunnel <-> kernel vxlan: ping and TCP both ways (UDP underlay)', { skip, timeout: 60000 }, () =>
  interop({}, { underlay: 'udp' }),
);

test('vxnet tunnel <-> kernel vxlan: ping and TCP both ways (raw underlay)', { skip, timeout: 60000 }, () =>
  interop({}, { underlay: 'raw' }, 'SIGINT'),
);

test('vxnet tunnel <-> kernel vxlan over an IPv6 underlay (fd77::)', { skip, timeout: 60000 }, () =>
  interop({ ipv6: true, udp6ZeroCsum: false }, { underlay: 'udp' }),
);

test(
  'vxnet tunnel --learning, no --remote: the kernel peer is learned once, at the VXLAN port',
  {
    skip,
    timeout: 60000,
  },
  () => interop({}, { remotes: [], learning: true }),
);
