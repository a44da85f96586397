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
      assert.equal(drops(s.global, 'auth'), 0);
      assert.equal(drops(s.global, 'replay'), 0);
    }
  });
});

// A crypto helper thread that dies must not hang the I/O thread: VXNET_FAULT_ESP_HELPER makes the
// sender's helper exit after taking its 4th slice, before sealing it (a crash mid-slice). That
// batch is dropped (never sent half-sealed: resealing in place would undo the encryption), every
// later batch is sealed on the I/O thread, the tunnel says so on stderr, and TCP still delivers
// every byte; the receiver sees no tampered (auth) or cleartext packet.
describe('vxnet tunnel --encrypt --crypto-workers 1: a helper thread dies mid-slice', () => {
  let pair: Pair;
  const tunnels: Tunnel[] = [];
  const secret = randomBytes(16);

  before(async () => {
    pair = await createPair({ vtep: ['none', 'none'], mtu: 1421 });
    for (const i of [0, 1] as const) {
      const peer = pair.hosts[1 - i]!;
      if (i === 0) process.env.VXNET_FAULT_ESP_HELPER = 'exit-busy:3';
      try {
        tunnels.push(
          await startPairTunnel(pair, i, {
            neigh: [`${peer.overlayIp}=${overlayMac(peer.overlayIp)}`],
            fdb: [`${overlayMac(peer.overlayIp)}=${peer.underlayIp}`],
            extraArgs: ['--encrypt', '--key', secret.toString('hex'), '--crypto-workers', '1'],
          }),
        );
      } finally {
        delete process.env.VXNET_FAULT_ESP_HELPER;
      }
    }
  });

  after(async () => {
    await Promise.all(tunnels.map((t) => t.stop()));
    await pair?.destroy();
  });

  test('the I/O thread takes the work back: a hashed 16 MB TCP transfer crosses, failure counted and logged', async () => {
    const [a, b] = pair.hosts;
    await waitPing(a.container, b.overlayIp);
    const t = await tcpTransfer(a.container, b.container, b.overlayIp, { bytes: 16 << 20, timeoutMs: 90000 });
    assert.deepEqual(t.received, t.sent);
    type E = {
      opened: number;
      sealed: number;
      helperSlices: number;
      helperFailed: number;
      helperLost: number;
    };
    const sa = ((await tunnels[0]!.stats()) as unknown as { esp: E }).esp;
    assert.equal(sa.helperFailed, 1, JSON.stringify(sa));
    assert.equal(sa.helperSlices, 3, 'the helper sealed 3 slices before it died');
    assert.equal(sa.helperLost, 1, 'the batch it held was dropped, not sent');
    assert.ok(sa.sealed > 10000, `sealed ${sa.sealed}: the I/O thread went on alone`);
    assert.match(tunnels[0]!.log(), /crypto helper 0 failed/);
    const g = (await tunnels[1]!.stats()).global;
    assert.equal(drops(g, 'auth'), 0, 'no half-sealed packet reached the receiver');
    assert.equal(drops(g, 'cleartext'), 0);
  });
});
