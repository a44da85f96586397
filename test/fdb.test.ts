// The WASM FDB (assembly/fdb.ts through src/wasm/datapath.ts) against the Map-based reference
// (test/ref/datapath-ref.ts) under long random sequences of adds, learning, removes, lookups,
// ageing, flushes by VNI and deletes by peer. Small capacities keep the table nearly full, so
// probing, wrap-around at the end of the slot array, backward-shift deletes and ERR_FDB_FULL are
// all exercised.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isVxError } from '../src/errors.js';
import { writeSockaddr } from '../src/io/sockaddr.js';
import { Datapath } from '../src/wasm/datapath.js';
import { macNum, RefDatapath } from './ref/datapath-ref.js';

/** xorshift32: deterministic, so a failing seed reproduces. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  return { next, int: (n: number) => next() % n, chance: (p: number) => next() / 2 ** 32 < p };
}

function macBytes(i: number): Uint8Array {
  // Locally administered unicast: 02:xx:...; i spreads over the other bytes.
  return Uint8Array.from([
    0x02,
    (i >>> 24) & 0xff,
    (i >>> 16) & 0xff,
    (i >>> 8) & 0xff,
    i & 0xff,
    (i * 7) & 0xff,
  ]);
}

function snapshot(ref: RefDatapath): string[] {
  const out: string[] = [];
  for (const [vni, m] of ref.fdb) {
    for (const [mac, e] of m) out.push(`${vni}/${mac}/${e.peer}/${e.static}/${e.static ? '' : e.time}`);
  }
  return out.sort();
}

function wasmSnapshot(dp: Datapath): string[] {
  return dp
    .fdbEntries()
    .map((e) => {
      const mac = macNum(
        Uint8Array.from(e.mac.split(':'), (h) => Number.parseInt(h, 16)),
        0,
      );
      return `${e.vni}/${mac}/${e.peer}/${e.static}/${e.static ? '' : e.time}`;
    })
    .sort();
}

function addPeerBoth(dp: Datapath, ref: RefDatapath, k: number): number {
  const address = `10.0.${k >> 8}.${k & 0xff}`;
  const sa = new Uint8Array(32);
  writeSockaddr(sa, 0, address, 4789);
  const a = dp.addPeer({ address });
  const b = ref.addPeer(sa, 0);
  assert.equal(a, b, 'peer index');
  return a;
}

function randomRun(
  seed: number,
  opts: { capacity: number; steps: number; vnis: number; macs: number; ageing: number; rare?: number },
) {
  const r = rng(seed);
  const ageing = opts.ageing;
  const dp = Datapath.create({ fdbCapacity: opts.capacity, maxPeers: 8, maxVnis: 4, ageingSeconds: ageing });
  const ref = new RefDatapath({ fdbCapacity: opts.capacity, maxPeers: 8, ageingSeconds: ageing });
  const peers: number[] = [];
  for (let k = 0; k < 4; k++) peers.push(addPeerBoth(dp, ref, k));
  let nextPeer = 4;
  let now = 1000;
  const pick = () => ({ vni: 1 + r.int(opts.vnis), i: r.int(opts.macs) });
  const stats = { full: 0, staticExists: 0, aged: 0, flushed: 0 };
  for (let step = 0; step < opts.steps; step++) {
    let op = r.int(100);
    // `rare` thins out flushes and peer deletes so that a larger table gets to fill up.
    if (op >= 95 && !r.chance(opts.rare ?? 1)) op = 40;
    if (op < 30) {
      const { vni, i } = pick();
      const peer = peers[r.int(peers.length)]!;
      const replace = r.chance(0.3);
      const want = ref.fdbAdd(vni, macNum(macBytes(i), 0), peer, now, replace);
      let got = 'ok';
      try {
        dp.addFdb([{ vni, mac: macBytes(i), peer }], { replace, now });
      } catch (e) {
        got = isVxError(e, 'ERR_FDB_FULL')
          ? 'full'
          : isVxError(e, 'ERR_FDB_STATIC_EXISTS')
            ? 'static-exists'
            : `${e}`;
      }
      assert.equal(got, want, `step ${step}: add`);
      if (want === 'full') stats.full++;
      if (want === 'static-exists') stats.staticExists++;
    } else if (op < 60) {
      const { vni, i } = pick();
      const peer = peers[r.int(peers.length)]!;
      const want = ref.fdbLearn(vni, macNum(macBytes(i), 0), peer, now) < 0 ? 1 : 0;
      assert.equal(dp.learnFdb([{ vni, mac: macBytes(i), peer }], now), want, `step ${step}: learn`);
    } else if (op < 75) {
      const { vni, i } = pick();
      const want = ref.fdbRemove(vni, macNum(macBytes(i), 0)) ? 1 : 0;
      assert.equal(dp.removeFdb([{ vni, mac: macBytes(i) }]), want, `step ${step}: remove`);
    } else if (op < 88) {
      const keys = Array.from({ length: 16 }, pick);
      const got = dp.lookupFdb(keys.map((k) => ({ vni: k.vni, mac: macBytes(k.i) })));
      const want = keys.map((k) => ref.fdbGet(k.vni, macNum(macBytes(k.i), 0))?.peer ?? -1);
      assert.deepEqual(got, want, `step ${step}: lookup`);
    } else if (op < 95) {
      now += r.int(20);
      // Sometimes a whole sweep, sometimes a partial one (the rest is swept below before comparing).
      const want = ref.age(now);
      let got = 0;
      if (r.chance(0.5)) got = dp.age(now);
      else {
        const slots = 1 << Math.ceil(Math.log2(opts.capacity + Math.floor(opts.capacity / 8) + 1));
        got = dp.age(now, { budget: 1 + r.int(slots) });
        got += dp.age(now, { budget: Math.max(8, slots) * 2 });
      }
      assert.equal(got, want, `step ${step}: age`);
      stats.aged += got;
    } else if (op < 98) {
      const vni = 1 + r.int(opts.vnis);
      const n = ref.flushVni(vni);
      assert.equal(dp.flushVni(vni), n, `step ${step}: flush`);
      stats.flushed += n;
    } else {
      const victim = peers.splice(r.int(peers.length), 1)[0]!;
      ref.removePeer(victim);
      dp.removePeer(victim);
      peers.push(addPeerBoth(dp, ref, nextPeer++));
    }
    assert.equal(dp.fdbCount, ref.fdbCount, `step ${step}: count`);
    if (step % 50 === 0 || step === opts.steps - 1) {
      const got = wasmSnapshot(dp);
      const want = snapshot(ref);
      // Compare as text: assert's diff of long arrays is very slow.
      const extra = got.filter((x) => !want.includes(x));
      const missing = want.filter((x) => !got.includes(x));
      assert.ok(
        extra.length + missing.length === 0,
        `step ${step}: contents: extra ${extra}, missing ${missing}`,
      );
    }
  }
  return stats;
}

test('FDB matches a Map under random churn, small nearly-full table (capacity 13)', () => {
  for (const seed of [1, 2, 3]) {
    const stats = randomRun(seed, { capacity: 13, steps: 3000, vnis: 3, macs: 12, ageing: 30 });
    // (assert.ok always gets a message: without one, Node re-parses the transpiled file, slowly.)
    assert.ok(stats.full > 0, `the table filled up: ${JSON.stringify(stats)}`);
    assert.ok(stats.staticExists > 0, 'static conflicts happened');
    assert.ok(stats.aged > 0, 'entries aged out');
  }
});

test('FDB matches a Map under random churn, larger table (capacity 200)', () => {
  const stats = randomRun(42, { capacity: 200, steps: 6000, vnis: 4, macs: 150, ageing: 400, rare: 0.1 });
  assert.ok(stats.full > 0 && stats.flushed > 0 && stats.aged > 0, JSON.stringify(stats));
});

test('learning never overwrites a static entry; replace is explicit', () => {
  const dp = Datapath.create({ fdbCapacity: 16, maxPeers: 4 });
  const a = dp.addPeer({ address: '192.0.2.1' });
  const b = dp.addPeer({ address: '192.0.2.2' });
  const mac = '02:00:00:00:00:01';
  dp.addFdb([{ vni: 7, mac, peer: a }]);
  assert.equal(dp.learnFdb([{ vni: 7, mac, peer: b }], 5), 1, 'learning refused');
  assert.deepEqual(dp.lookupFdb([{ vni: 7, mac }]), [a]);
  assert.throws(() => dp.addFdb([{ vni: 7, mac, peer: b }]), { code: 'ERR_FDB_STATIC_EXISTS' });
  dp.addFdb([{ vni: 7, mac, peer: a }]); // same peer: idempotent
  dp.addFdb([{ vni: 7, mac, peer: b }], { replace: true });
  assert.deepEqual(dp.lookupFdb([{ vni: 7, mac }]), [b]);
  // A learned entry is made static by a control-plane add, and then survives ageing.
  dp.learnFdb([{ vni: 8, mac, peer: a }], 0);
  dp.addFdb([{ vni: 8, mac, peer: b }]);
  assert.equal(dp.age(1_000_000), 0);
  assert.deepEqual(dp.lookupFdb([{ vni: 8, mac }]), [b]);
});

test('bad FDB input gets stable error codes and changes nothing', () => {
  const dp = Datapath.create({ fdbCapacity: 4, maxPeers: 2 });
  const p = dp.addPeer({ address: '192.0.2.1' });
  const good = { vni: 1, mac: '02:00:00:00:00:01', peer: p };
  assert.throws(() => dp.addFdb([good, { vni: 1 << 24, mac: good.mac, peer: p }]), {
    code: 'ERR_INVALID_VNI',
  });
  assert.throws(() => dp.addFdb([good, { vni: 1, mac: 'zz:00:00:00:00:01', peer: p }]), {
    code: 'ERR_INVALID_MAC',
  });
  assert.throws(() => dp.addFdb([good, { vni: 1, mac: new Uint8Array(5), peer: p }]), {
    code: 'ERR_INVALID_MAC',
  });
  assert.equal(dp.fdbCount, 0, 'validated before applying');
  assert.throws(() => dp.addFdb([{ vni: 1, mac: 'ff:ff:ff:ff:ff:ff', peer: p }]), {
    code: 'ERR_INVALID_MAC',
  });
  assert.throws(() => dp.addFdb([{ vni: 1, mac: '00:00:00:00:00:00', peer: p }]), {
    code: 'ERR_INVALID_MAC',
  });
  assert.throws(() => dp.addFdb([{ vni: 1, mac: '02:00:00:00:00:01', peer: 1 }]), {
    code: 'ERR_INVALID_PEER',
  });
  assert.throws(() => dp.addFdb([{ vni: 1, mac: '02:00:00:00:00:01', peer: -1 }]), {
    code: 'ERR_INVALID_PEER',
  });
  const five = [1, 2, 3, 4, 5].map((i) => ({ vni: 1, mac: `02:00:00:00:00:0${i}`, peer: p }));
  assert.throws(
    () => dp.addFdb(five),
    (e: Error) => isVxError(e, 'ERR_FDB_FULL') && /1 of 5/.test(e.message),
  );
  assert.equal(dp.fdbCount, 4);
  assert.throws(() => Datapath.create({ fdbCapacity: 0 }), { code: 'ERR_INVALID_ARG' });
  assert.throws(() => Datapath.create({ maxPeers: 70000 }), { code: 'ERR_INVALID_ARG' });
});

test('delete by peer and flush by VNI remove exactly their entries', () => {
  const dp = Datapath.create({ fdbCapacity: 1000, maxPeers: 4, maxVnis: 4 });
  const a = dp.addPeer({ address: '192.0.2.1' });
  const b = dp.addPeer({ address: '2001:db8::2', port: 8472 });
  const entries = Array.from({ length: 600 }, (_, i) => ({
    vni: 1 + (i % 3),
    mac: macBytes(i),
    peer: i % 2 ? a : b,
  }));
  dp.addFdb(entries);
  assert.equal(dp.fdbCount, 600);
  assert.equal(dp.flushVni(2), 200);
  dp.removePeer(a);
  dp.removePeer(a); // twice is fine
  const left = entries.filter((e) => e.vni !== 2 && e.peer === b);
  assert.equal(dp.fdbCount, left.length);
  assert.deepEqual(
    dp.lookupFdb(entries),
    entries.map((e) => (e.vni !== 2 && e.peer === b ? b : -1)),
  );
});

test('a 1M-entry FDB fits in 32 MiB, holds 1M entries and reports full after', () => {
  const cap = 1 << 20;
  const dp = Datapath.create({ fdbCapacity: cap, maxPeers: 4, neighCapacity: 16 });
  assert.ok(dp.memoryBytes().fdb <= 64 * 2 ** 20, `${dp.memoryBytes().fdb} bytes`);
  const p = dp.addPeer({ address: '192.0.2.1' });
  const batch: { vni: number; mac: Uint8Array; peer: number }[] = [];
  for (let i = 0; i < cap; i++) {
    batch.push({ vni: 1 + (i & 7), mac: macBytes(i), peer: p });
    if (batch.length === 65536) {
      dp.addFdb(batch);
      batch.length = 0;
    }
  }
  assert.equal(dp.fdbCount, cap);
  assert.throws(() => dp.addFdb([{ vni: 99, mac: macBytes(1), peer: p }]), { code: 'ERR_FDB_FULL' });
  const sample = Array.from({ length: 1000 }, (_, k) => ({
    vni: 1 + ((k * 997) & 7),
    mac: macBytes(k * 997),
  }));
  assert.deepEqual(dp.lookupFdb(sample), new Array(1000).fill(p));
});
