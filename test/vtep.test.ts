// The library API of the tunnel endpoint: two VtepEngines in this process, each with its socket and
// TAP inside one simulated host (src/lab/pair.ts), play the control plane's part: an L2 miss is
// reported and answered with a static FDB entry, a peer and a MAC are learned from traffic (with
// a 'learned' event), an ARP request for an unknown address is an L3 miss, counters are per VNI
// and per peer, and removing the FDB entry cuts the path again. Needs root.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { ip } from '../src/kernel/exec.js';
import { execInNetns } from '../src/kernel/netns.js';
import { createPair, overlayMac, type Pair } from '../src/lab/pair.js';
import { type EngineEvent, VtepEngine } from '../src/vtep/engine.js';

const skip = process.getuid?.() === 0 ? false : 'needs root';
let pair: Pair;
const engines: VtepEngine[] = [];

async function pings(ns: string, dest: string): Promise<boolean> {
  try {
    await execInNetns(ns, 'ping', ['-c', '1', '-W', '1', '-q', dest]);
    return true;
  } catch {
    return false;
  }
}

before(async () => {
  if (skip) return;
  pair = await createPair({ vtep: ['none', 'none'] });
  for (const h of pair.hosts) {
    const e = await VtepEngine.open({
      netns: h.ns,
      local: h.underlayIp,
      learning: true,
      floodUnknown: false,
    });
    engines.push(e);
    await e.addPort({ vni: pair.vni, name: 'vx0', mtu: pair.mtu, netns: h.ns });
    await ip(['link', 'set', 'dev', 'vx0', 'master', 'br0'], { netns: h.ns, action: 'attach vx0' });
  }
});

after(async () => {
  for (const e of engines) await e.close();
  await pair?.destroy();
});

test('misses, learning, static entries and counters through the library API', {
  skip,
  timeout: 60000,
}, async () => {
  const [a, b] = engines as [VtepEngine, VtepEngine];
  const [h1, h2] = pair.hosts;
  const vni = pair.vni;
  const mac2 = overlayMac(h2.overlayIp);
  const mac1 = overlayMac(h1.overlayIp);
  // A knows B as a peer and c2's address; B knows nobody and has to learn (from A's first datagram:
  // c1's IPv6 router solicitations are flooded to B even before any ping).
  const learned = once(b, 'learned') as Promise<[EngineEvent]>;
  await a.addPeer(vni, h2.underlayIp);
  await a.addNeigh(vni, [{ ip: h2.overlayIp, mac: mac2 }]);
  await b.addNeigh(vni, [{ ip: h1.overlayIp, mac: mac1 }]);

  const miss = once(a, 'l2miss') as Promise<[EngineEvent]>;
  assert.equal(await pings(h1.container, h2.overlayIp), false, 'no FDB entry, no flooding: no path');
  const [l2] = await miss;
  assert.deepEqual(l2, { type: 'l2miss', vni, mac: mac2 });
  assert.ok(a.stats().vnis.get(vni)!.drops.l2Miss > 0);

  // The control plane's answer to the miss: a static entry.
  await a.addFdb(vni, [{ mac: mac2, remote: h2.underlayIp }]);
  assert.ok(await pings(h1.container, h2.overlayIp), 'c1 reaches c2 once the MAC is placed');
  const [peer] = await learned;
  assert.deepEqual(peer, { type: 'learned', vni, address: h1.underlayIp, port: pair.port });
  assert.deepEqual(
    b
      .fdb(vni)
      .filter((e) => e.mac === mac1)
      .map((e) => ({ address: e.address, static: e.static })),
    [{ address: h1.underlayIp, static: false }],
    'B learned c1 behind A',
  );
  assert.deepEqual(
    a.fdb(vni).map((e) => [e.mac, e.address, e.static]),
    [[mac2, h2.underlayIp, true]],
  );
  const sa = a.stats();
  const toB = sa.peers.find((p) => p.address === h2.underlayIp)!;
  assert.ok(toB.counters.txPackets > 0 && toB.counters.rxPackets > 0, JSON.stringify(toB));
  assert.ok(sa.vnis.get(vni)!.replies > 0, 'the ARP proxy answered c1');
  assert.ok(b.stats().peers.some((p) => p.address === h1.underlayIp && p.learned));

  // An ARP request for an address nobody registered: an L3 miss.
  const l3 = once(a, 'l3miss') as Promise<[EngineEvent]>;
  await pings(h1.container, '10.77.0.99');
  assert.deepEqual((await l3)[0], { type: 'l3miss', vni, ip: '10.77.0.99' });

  // Taking the entry away cuts the path again.
  assert.equal(await a.removeFdb(vni, [mac2]), 1);
  assert.equal(await pings(h1.container, h2.overlayIp), false);
  await assert.rejects(a.addPeer(vni, 'fd00::1'), { code: 'ERR_ADDRESS_FAMILY' });
  await assert.rejects(a.addPort({ vni, name: 'vx1' }), { code: 'ERR_VNI_IN_USE' });
});
