// vxnet tunnel --encrypt --crypto-workers 1: big seal batches are split between the I/O thread
// and a helper thread (src/crypto/esp-split.ts); traffic still crosses intact with no auth or
// replay drops, and the helper really ran slices.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createPair, overlayMac, type Pair } from '../src/lab/pair.js';
import { tcpTransfer, waitPing } from '../src/lab/traffic.js';
import { drops, startPairTunnel, type Tunnel } from '../src/lab/tunnel.js';

describe('vxnet tunnel --encrypt --crypto-workers 1', () => {
  let pair: Pair;
  const tunnels: Tunnel[] = [];
  const secret = randomBytes(32);

  before(async () => {
    pair = await createPair({ vtep: ['none', 'none'], mtu: 1413 });
    for (const i of [0, 1] as const) {
      const peer = pair.hosts[1 - i]!;
      tunnels.push(
        await startPairTunnel(pair, i, {
          neigh: [`${peer.overlayIp}=${overlayMac(peer.overlayIp)}`],
          fdb: [`${overlayMac(peer.overlayIp)}=${peer.underlayIp}`],
          extraArgs: ['--encrypt', '--key', secret.toString('hex'), '--crypto-workers', '1'],
        }),
      );
    }
  });

  after(async () => {
    await Promise.all(tunnels.map((t) => t.stop()));
    await pair?.destroy();
  });

  test('ping and a hashed 16 MB TCP transfer cross; the helper sealed slices; no auth/replay drops', async () => {
    const [a, b] = pair.hosts;
    await waitPing(a.container, b.overlayIp);
    const t = await tcpTransfer(a.container, b.container, b.overlayIp, { bytes: 16 << 20, timeoutMs: 60000 });
    assert.deepEqual(t.received, t.sent);
    type S = { esp: { opened: number; sealed: number; helperSlices: number }; global: unknown };
    const sa = (await tunnels[0]!.stats()) as unknown as S;
    const sb = (await tunnels[1]!.stats()) as unknown as S;
    assert.ok(sa.esp.sealed > 1000, `sealed ${sa.esp.sealed}`);
    assert.ok(sa.esp.helperSlices > 0, `helper slices ${sa.esp.helperSlices}`);
    for (const s of [sa, sb]) {
      assert.equal(drops(s.global, 'auth-failed'), 0);
      assert.equal(drops(s.global, 'replay'), 0);
    }
  });
});
