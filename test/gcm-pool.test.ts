// GcmPool (src/crypto/pool.ts): batches sealed and opened by Piscina workers on the shared memory
// give exactly the bytes and statuses of the single-thread path, and tampered messages fail there
// too with their text zeroed.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import { GCM_ERR_AUTH, GCM_OK } from '../assembly/constants.js';
import { GcmBatch } from '../src/crypto/batch.js';
import { GcmKey, type GcmTagLength, openBatch, sealBatch } from '../src/crypto/gcm.js';
import { GcmPool } from '../src/crypto/pool.js';

const TAGS: GcmTagLength[] = [16, 12, 8];

test('pool results equal single-thread results (seal and open, 2 workers, split batches)', async (t) => {
  // A small minTaskBytes forces every batch to be cut into one task per worker.
  const pool = new GcmPool({ threads: 2, minTaskBytes: 4096 });
  t.after(() => pool.close());
  const slots = 300;
  const key = GcmKey.create(crypto.randomBytes(32));
  const a = new GcmBatch({ slots, maxText: 9000 });
  const b = new GcmBatch({ slots, maxText: 9000 });
  const pts: Buffer[] = [];
  for (let i = 0; i < slots; i++) {
    const pt = crypto.randomBytes(crypto.randomInt(0, i % 10 === 0 ? 9001 : 1500));
    pts.push(pt);
    a.set(i, {
      nonce: crypto.randomBytes(12),
      aad: crypto.randomBytes(crypto.randomInt(0, 65)),
      text: pt,
      tagLength: TAGS[i % 3]!,
    });
  }
  a.copyTo(b);

  assert.equal(await pool.sealBatch(key, a.descs, slots), 0);
  assert.equal(sealBatch(key, b.descs, slots), 0);
  for (let i = 0; i < slots; i++) {
    const n = pts[i]!.length;
    const tl = TAGS[i % 3]!;
    assert.ok(Buffer.from(a.text(i, n)).equals(Buffer.from(b.text(i, n))), `slot ${i} ciphertext`);
    assert.ok(Buffer.from(a.tag(i, n, tl)).equals(Buffer.from(b.tag(i, n, tl))), `slot ${i} tag`);
    assert.ok(!Buffer.from(a.text(i, n)).equals(pts[i]!) || n === 0);
  }

  // Tamper with every 7th message in both copies, then open with the pool and single-threaded.
  for (let i = 0; i < slots; i += 7) {
    const n = pts[i]!.length;
    a.tag(i, n, 8)[0]! ^= 0x80;
    b.tag(i, n, 8)[0]! ^= 0x80;
  }
  const bad = Math.ceil(slots / 7);
  assert.equal(await pool.openBatch(key, a.descs, slots), bad);
  assert.equal(openBatch(key, b.descs, slots), bad);
  for (let i = 0; i < slots; i++) {
    const n = pts[i]!.length;
    const want = i % 7 === 0 ? GCM_ERR_AUTH : GCM_OK;
    assert.equal(a.status(i), want);
    assert.equal(b.status(i), want);
    const got = Buffer.from(a.text(i, n));
    assert.ok(got.equals(Buffer.from(b.text(i, n))), `slot ${i} opened bytes`);
    assert.ok(want === GCM_OK ? got.equals(pts[i]!) : got.every((x) => x === 0), `slot ${i}`);
  }
});

test('pool runs small batches inline and rejects use after close', async () => {
  const pool = new GcmPool({ threads: 2 });
  const key = GcmKey.create(crypto.randomBytes(16));
  const batch = new GcmBatch({ slots: 2, maxText: 64 });
  batch.set(0, { nonce: crypto.randomBytes(12), text: crypto.randomBytes(64) });
  batch.set(1, { nonce: crypto.randomBytes(12), text: crypto.randomBytes(10), tagLength: 8 });
  assert.equal(await pool.sealBatch(key, batch.descs, 2), 0);
  assert.equal(await pool.openBatch(key, batch.descs, 2), 0);
  await pool.close();
  await assert.rejects(pool.sealBatch(key, batch.descs, 2), { code: 'ERR_POOL_CLOSED' });
});

test('a descriptor pointing outside memory fails the pool batch with ERR_OUT_OF_BOUNDS', async (t) => {
  const pool = new GcmPool({ threads: 2, minTaskBytes: 16 });
  t.after(() => pool.close());
  const key = GcmKey.create(crypto.randomBytes(16));
  const batch = new GcmBatch({ slots: 4, maxText: 64 });
  for (let i = 0; i < 4; i++) batch.set(i, { nonce: crypto.randomBytes(12), text: crypto.randomBytes(64) });
  batch.core.dv().setUint32(batch.descs + 3 * 32, 0xfffffff0, true); // text address of message 3
  await assert.rejects(pool.sealBatch(key, batch.descs, 4), { code: 'ERR_OUT_OF_BOUNDS' });
  assert.throws(() => sealBatch(key, batch.descs, 4), { code: 'ERR_OUT_OF_BOUNDS' });
});
