// EspSaManager (src/crypto/esp-sas.ts): two tunnel endpoints derive the same SAs from the cluster
// keys and keep every packet openable through a rotation: packets sealed under the old key while
// the new one was pending or just switched to still open, in mixed batches; a retired key's
// packets drop as bad SPI.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import {
  DESC_ARG,
  DESC_LEN,
  DESC_PTR,
  DESC_VERDICT,
  DROP_BAD_SPI,
  VERDICT_LOCAL,
  VERDICT_SEND,
} from '../assembly/constants.js';
import { Esp } from '../src/crypto/esp.js';
import { deriveSa, EspSaManager } from '../src/crypto/esp-sas.js';
import { PacketBatch } from '../src/io/batch.js';

const A = '192.0.2.1';
const B = '192.0.2.2';

class End {
  readonly esp = new Esp({ maxSas: 16, maxPeers: 4 });
  readonly sas: EspSaManager;
  readonly batch = new PacketBatch({ capacity: 64 });
  constructor(local: string, remote: string) {
    this.sas = new EspSaManager({ esp: this.esp, local });
    this.sas.addPeer(0, remote);
  }
  #io(pkts: Buffer[], verdict: number): { verdict: number; arg: number; out: Buffer }[] {
    const c = this.esp.core;
    pkts.forEach((p, i) => {
      c.u8().set(p, this.batch.frame(i));
      const dv = c.dv();
      const d = this.batch.desc(i);
      dv.setUint32(d + DESC_PTR, this.batch.frame(i), true);
      dv.setUint32(d + DESC_LEN, p.length, true);
      dv.setUint32(d + DESC_VERDICT, verdict, true);
      dv.setUint32(d + DESC_ARG, 0, true);
    });
    if (verdict === VERDICT_SEND) this.esp.seal(this.batch.descs, pkts.length);
    else this.esp.open(this.batch.descs, pkts.length);
    const dv = c.dv();
    return pkts.map((_, i) => {
      const d = this.batch.desc(i);
      const p = dv.getUint32(d + DESC_PTR, true);
      return {
        verdict: dv.getUint32(d + DESC_VERDICT, true),
        arg: dv.getUint32(d + DESC_ARG, true),
        out: Buffer.from(c.u8().slice(p, p + dv.getUint32(d + DESC_LEN, true))),
      };
    });
  }
  seal(n: number, tag: string): { pkt: Buffer; plain: Buffer }[] {
    const plain = Array.from({ length: n }, (_, i) => Buffer.from(`udp+vxlan ${tag} ${i} `.padEnd(200, '.')));
    return this.#io(plain, VERDICT_SEND).map((r, i) => {
      assert.equal(r.verdict, VERDICT_SEND, `seal ${tag} ${i}: drop ${r.arg}`);
      return { pkt: r.out, plain: plain[i]! };
    });
  }
  open(pkts: Buffer[]) {
    return this.#io(pkts, 0);
  }
}

test('ESP SAs from cluster keys: both ends agree, and a rotation loses no packet in flight', () => {
  const k1 = { id: 1, secret: randomBytes(16) };
  const k2 = { id: 2, secret: randomBytes(16) };
  const k3 = { id: 3, secret: randomBytes(16) };
  const a = new End(A, B);
  const b = new End(B, A);
  for (const e of [a, b]) e.sas.setKeys({ keys: [k1], primary: 1 });
  const spi = (p: Buffer) => p.readUInt32BE(0);
  const sA1 = deriveSa(k1.secret, 1, A, B).spi;
  const sB1 = deriveSa(k1.secret, 1, B, A).spi;
  assert.notEqual(sA1, sB1, 'each direction has its own SA');
  assert.deepEqual(a.sas.spis(0).get(1), { in: sB1, out: sA1 });
  assert.deepEqual(b.sas.spis(0).get(1), { in: sA1, out: sB1 });

  const inFlight1 = a.seal(8, 'k1 before rotation');
  assert.ok(inFlight1.every((x) => spi(x.pkt) === sA1));
  // Step 1-2: k2 pending, installed on both for receiving; sending stays on k1.
  for (const e of [a, b]) e.sas.setKeys({ keys: [k1, k2], primary: 1 });
  const inFlight2 = a.seal(8, 'k1 while k2 pending');
  assert.ok(inFlight2.every((x) => spi(x.pkt) === sA1));
  // Step 3: A sees the switch first and sends with k2; B has not switched yet.
  a.sas.setKeys({ keys: [k1, k2], primary: 2 });
  const afterA = a.seal(8, 'k2 from A');
  const sA2 = deriveSa(k2.secret, 2, A, B).spi;
  assert.ok(afterA.every((x) => spi(x.pkt) === sA2));
  const fromB = b.seal(4, 'k1 from B (not switched yet)');
  // B receives everything in one mixed, reordered batch: old-key and new-key packets interleaved.
  const mixed = [...afterA, ...inFlight1, ...inFlight2].sort(() => Math.random() - 0.5);
  const opened = b.open(mixed.map((x) => x.pkt));
  opened.forEach((r, i) => {
    assert.equal(r.verdict, VERDICT_LOCAL, `packet ${i}: drop ${r.arg}`);
    assert.deepEqual(r.out, mixed[i]!.plain);
  });
  assert.ok(a.open(fromB.map((x) => x.pkt)).every((r) => r.verdict === VERDICT_LOCAL));
  b.sas.setKeys({ keys: [k1, k2], primary: 2 });
  const k2late = a.seal(1, 'k2, delivered after the next rotation');
  // Next rotation retires k1: k1 packets now drop (bad SPI), k2 and k3 open.
  for (const e of [a, b]) e.sas.setKeys({ keys: [k2, k3], primary: 3 });
  const late = a.seal(2, 'k3');
  const res = b.open([inFlight1[0]!.pkt, k2late[0]!.pkt, ...late.map((x) => x.pkt)]);
  assert.deepEqual(
    res.map((r) => (r.verdict === VERDICT_LOCAL ? 'ok' : r.arg)),
    [DROP_BAD_SPI, 'ok', 'ok', 'ok'],
  );
  assert.deepEqual([...a.sas.spis(0).keys()].sort(), [2, 3]);
  assert.equal(a.esp.sas().length, 4, 'two keys x two directions');
  a.sas.removePeer(0);
  a.sas.removePeer(0);
  assert.equal(a.esp.sas().length, 0);
});
