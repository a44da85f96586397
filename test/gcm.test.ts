// AES-GCM (src/crypto/gcm.ts over assembly/gcm.ts) against NIST CAVP vectors and OpenSSL.
//
// - Known answers: test/vectors/gcm-nist.json (NIST CAVP GCMVS, AES-128 and AES-256, empty
//   plaintext, empty AAD, 13-byte and 51-byte texts, 90-byte AAD, decrypt FAIL cases); the tags
//   are also checked truncated to 12 and 8 bytes (GCM's MSB_t).
// - 10,000 random cases against node:crypto in both directions (vxnet seals and OpenSSL opens, and
//   the reverse), every tag length, key sizes 128/256, AAD 0-64 B, texts 0-9000 B (mostly small).
// - Tampering with ciphertext, tag, AAD or nonce is rejected and leaves no plaintext behind.
// - The plain WASM build (the suite itself runs the relaxed-SIMD one where V8 has it) agrees too.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { GCM_ERR_AUTH, GCM_ERR_TAG_LEN, GCM_OK } from '../assembly/constants.js';
import { GcmBatch } from '../src/crypto/batch.js';
import { GcmKey, type GcmTagLength, open, openBatch, seal, sealBatch } from '../src/crypto/gcm.js';
import { isVxError } from '../src/errors.js';

interface EncVector {
  key: string;
  iv: string;
  pt: string;
  aad: string;
  ct: string;
  tag: string;
}
interface DecVector {
  key: string;
  iv: string;
  ct: string;
  aad: string;
  tag: string;
  pt: string | null;
}
const vectors = JSON.parse(readFileSync(new URL('./vectors/gcm-nist.json', import.meta.url), 'utf8')) as {
  gcmEncryptExtIV128: EncVector[];
  gcmEncryptExtIV256: EncVector[];
  gcmDecrypt128: DecVector[];
  gcmDecrypt256: DecVector[];
};
const hex = (s: string) => Buffer.from(s, 'hex');
const TAGS: GcmTagLength[] = [16, 12, 8];

function nodeSeal(key: Uint8Array, iv: Uint8Array, pt: Uint8Array, aad: Uint8Array, tagLen: number): Buffer {
  const c = crypto.createCipheriv(key.length === 16 ? 'aes-128-gcm' : 'aes-256-gcm', key, iv, {
    authTagLength: tagLen,
  });
  c.setAAD(aad);
  return Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
}

function nodeOpen(key: Uint8Array, iv: Uint8Array, sealed: Uint8Array, aad: Uint8Array, tagLen: number) {
  const d = crypto.createDecipheriv(key.length === 16 ? 'aes-128-gcm' : 'aes-256-gcm', key, iv, {
    authTagLength: tagLen,
  });
  d.setAAD(aad);
  d.setAuthTag(sealed.subarray(sealed.length - tagLen));
  return Buffer.concat([d.update(sealed.subarray(0, sealed.length - tagLen)), d.final()]);
}

const authFailed = (e: unknown) => isVxError(e, 'ERR_AUTH_FAILED');

test('NIST gcmEncryptExtIV128/256: ciphertext and tag (16, and truncated to 12 and 8)', () => {
  const all = [...vectors.gcmEncryptExtIV128, ...vectors.gcmEncryptExtIV256];
  assert.equal(all.length, 24);
  for (const v of all) {
    const key = GcmKey.create(hex(v.key));
    for (const t of TAGS) {
      const out = seal(key, hex(v.iv), hex(v.pt), hex(v.aad), t);
      assert.equal(out.toString('hex'), v.ct + v.tag.slice(0, 2 * t), `key ${v.key} tag ${t}`);
      assert.equal(open(key, hex(v.iv), out, hex(v.aad), t).toString('hex'), v.pt);
    }
  }
});

test('NIST gcmDecrypt128/256: plaintexts, and FAIL cases rejected', () => {
  const all = [...vectors.gcmDecrypt128, ...vectors.gcmDecrypt256];
  assert.equal(all.length, 33);
  let fails = 0;
  for (const v of all) {
    const key = GcmKey.create(hex(v.key));
    const sealed = Buffer.concat([hex(v.ct), hex(v.tag)]);
    if (v.pt === null) {
      fails++;
      assert.throws(() => open(key, hex(v.iv), sealed, hex(v.aad)), authFailed);
    } else {
      assert.equal(open(key, hex(v.iv), sealed, hex(v.aad)).toString('hex'), v.pt);
    }
  }
  assert.equal(fails, 12);
});

test('NIST vectors through one batch call per key, statuses per message', () => {
  const v = vectors.gcmEncryptExtIV128[6]!; // 51-byte text, 20-byte AAD
  const key = GcmKey.create(hex(v.key));
  const batch = new GcmBatch({ slots: 4, maxText: 64 });
  batch.set(0, { nonce: hex(v.iv), text: hex(v.pt), aad: hex(v.aad), tagLength: 16 });
  batch.set(1, { nonce: hex(v.iv), text: hex(v.pt), aad: hex(v.aad), tagLength: 8 });
  batch.set(2, { nonce: hex(v.iv), text: hex(v.pt), aad: hex(v.aad), tagLength: 13 as GcmTagLength });
  batch.set(3, { nonce: hex(v.iv), text: new Uint8Array(0), aad: new Uint8Array(0), tagLength: 12 });
  assert.equal(sealBatch(key, batch.descs, 4), 1);
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => batch.status(i)),
    [GCM_OK, GCM_OK, GCM_ERR_TAG_LEN, GCM_OK],
  );
  assert.equal(Buffer.from(batch.text(0, 51)).toString('hex'), v.ct);
  assert.equal(Buffer.from(batch.tag(0, 51, 16)).toString('hex'), v.tag);
  assert.equal(Buffer.from(batch.tag(1, 51, 8)).toString('hex'), v.tag.slice(0, 16));
  assert.equal(Buffer.from(batch.text(2, 51)).toString('hex'), v.pt, 'a rejected message is untouched');
  batch.text(1, 51)[50]! ^= 1;
  assert.equal(openBatch(key, batch.descs, 4), 2);
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => batch.status(i)),
    [GCM_OK, GCM_ERR_AUTH, GCM_ERR_TAG_LEN, GCM_OK],
  );
  assert.equal(Buffer.from(batch.text(0, 51)).toString('hex'), v.pt);
  assert.ok(
    batch.text(1, 51).every((b) => b === 0),
    'failed open leaves zeros',
  );
});

/** Mostly small sizes with a spread up to 9000 (the 10,000 cases must stay fast). */
function randomSize(): number {
  const r = Math.random();
  if (r < 0.6) return crypto.randomInt(0, 130);
  if (r < 0.9) return crypto.randomInt(0, 1600);
  return crypto.randomInt(0, 9001);
}

test('10,000 random cases against node:crypto, both directions, every tag length', () => {
  // 2,000 through seal()/open() (one message per call: the one-at-a-time path) and 8,000 through
  // batches of 32 (sizes within +-2 of a common size in half of them, so the 16-message GHASH
  // groups run; random sizes in the others).
  let key!: GcmKey;
  let raw!: Buffer;
  const newKey = () => {
    raw = crypto.randomBytes(Math.random() < 0.5 ? 16 : 32);
    key = GcmKey.create(raw);
  };
  for (let i = 0; i < 2000; i++) {
    if (i % 10 === 0) newKey();
    const t = TAGS[i % 3]!;
    const nonce = crypto.randomBytes(12);
    const aad = crypto.randomBytes(crypto.randomInt(0, 65));
    const pt = crypto.randomBytes(randomSize());
    const ours = seal(key, nonce, pt, aad, t);
    const theirs = nodeSeal(raw, nonce, pt, aad, t);
    if (!ours.equals(theirs)) {
      assert.fail(`case ${i}: key ${raw.length * 8} bits, text ${pt.length}, aad ${aad.length}, tag ${t}`);
    }
    // vxnet seals, OpenSSL opens; OpenSSL seals (above), vxnet opens.
    assert.ok(nodeOpen(raw, nonce, ours, aad, t).equals(pt));
    assert.ok(open(key, nonce, theirs, aad, t).equals(pt));
  }
  const slots = 32;
  const ours = new GcmBatch({ slots, maxText: 9002 });
  const theirs = new GcmBatch({ slots, maxText: 9002 });
  for (let b = 0; b < 250; b++) {
    newKey();
    const common = b % 2 === 0 ? randomSize() : -1;
    const msgs = Array.from({ length: slots }, (_, i) => {
      const size = common >= 0 ? Math.max(0, common + crypto.randomInt(-2, 3)) : randomSize();
      const m = {
        t: TAGS[(b + i) % 3]!,
        nonce: crypto.randomBytes(12),
        aad: crypto.randomBytes(crypto.randomInt(0, common < 0 ? 65 : b % 4 === 0 ? 41 : 17)),
        pt: crypto.randomBytes(size),
      };
      const sealed = nodeSeal(raw, m.nonce, m.pt, m.aad, m.t);
      ours.set(i, { nonce: m.nonce, aad: m.aad, text: m.pt, tagLength: m.t });
      theirs.set(i, {
        nonce: m.nonce,
        aad: m.aad,
        text: sealed.subarray(0, size),
        tag: sealed.subarray(size),
        tagLength: m.t,
      });
      return { ...m, sealed };
    });
    assert.equal(sealBatch(key, ours.descs, slots), 0);
    assert.equal(openBatch(key, theirs.descs, slots), 0);
    for (const [i, m] of msgs.entries()) {
      const n = m.pt.length;
      const got = Buffer.concat([ours.text(i, n), ours.tag(i, n, m.t)]);
      if (!got.equals(m.sealed))
        assert.fail(`batch ${b} message ${i}: text ${n}, aad ${m.aad.length}, tag ${m.t}`);
      assert.ok(nodeOpen(raw, m.nonce, got, m.aad, m.t).equals(m.pt));
      assert.ok(Buffer.from(theirs.text(i, n)).equals(m.pt), `batch ${b} message ${i} opened`);
    }
  }
});

test('16-message GHASH groups (equal-size batches) match node:crypto, incl. shared E(K, J0) calls', () => {
  // Equal sizes make every run of 16 descriptors a group, and the last 13 a group with 3 spare
  // lanes; 128, 1400 and 1408 bytes fill whole AES calls (their E(K, J0) comes from a shared call),
  // the others do not.
  const slots = 45;
  const batch = new GcmBatch({ slots, maxText: 9000 });
  for (const size of [0, 15, 64, 100, 128, 1400, 1408, 9000]) {
    const raw = crypto.randomBytes(size % 2 ? 32 : 16);
    const key = GcmKey.create(raw);
    const msgs = Array.from({ length: slots }, (_, i) => {
      const m = {
        t: TAGS[i % 3]!,
        nonce: crypto.randomBytes(12),
        aad: crypto.randomBytes(i % 17),
        pt: crypto.randomBytes(size),
      };
      batch.set(i, { nonce: m.nonce, aad: m.aad, text: m.pt, tagLength: m.t });
      return m;
    });
    assert.equal(sealBatch(key, batch.descs, slots), 0);
    for (const [i, m] of msgs.entries()) {
      const got = Buffer.concat([batch.text(i, size), batch.tag(i, size, m.t)]);
      assert.ok(got.equals(nodeSeal(raw, m.nonce, m.pt, m.aad, m.t)), `size ${size} message ${i}`);
    }
    batch.tag(5, size, 8)[3]! ^= 4; // one forgery per group (message 5, 21, 37)
    batch.tag(21, size, 8)[0]! ^= 1;
    if (size > 0) batch.text(37, size)[size - 1]! ^= 0x80;
    else batch.tag(37, size, 8)[7]! ^= 0x80;
    assert.equal(openBatch(key, batch.descs, slots), 3);
    for (const [i, m] of msgs.entries()) {
      const forged = i === 5 || i === 21 || i === 37;
      assert.equal(batch.status(i), forged ? GCM_ERR_AUTH : GCM_OK);
      const text = Buffer.from(batch.text(i, size));
      assert.ok(forged ? text.every((x) => x === 0) : text.equals(m.pt), `size ${size} message ${i} opened`);
    }
  }
});

test('the plain WASM build (VXNET_WASM_RELAXED=0) seals and opens like node:crypto too', () => {
  // The suite runs on build/vxnet.relaxed.wasm where V8 allows it (src/wasm/module.ts); this runs
  // the plain build's AES-GCM in a child process: long and short texts, alone and in groups of 16.
  const script = `
    import crypto from 'node:crypto';
    import { GcmBatch } from './src/crypto/batch.ts';
    import { GcmKey, openBatch, sealBatch } from './src/crypto/gcm.ts';
    let checked = 0;
    for (const [size, slots] of [[0, 1], [100, 3], [1400, 1], [1400, 16], [4000, 2], [9000, 1]]) {
      const raw = crypto.randomBytes(16);
      const key = GcmKey.create(raw);
      const batch = new GcmBatch({ slots, maxText: 9000 });
      const msgs = Array.from({ length: slots }, (_, i) => {
        const m = { nonce: crypto.randomBytes(12), aad: crypto.randomBytes(8), pt: crypto.randomBytes(size) };
        batch.set(i, { nonce: m.nonce, aad: m.aad, text: m.pt, tagLength: 16 });
        return m;
      });
      if (sealBatch(key, batch.descs, slots) !== 0) throw new Error('seal failed');
      for (const [i, m] of msgs.entries()) {
        const c = crypto.createCipheriv('aes-128-gcm', raw, m.nonce);
        c.setAAD(m.aad);
        const want = Buffer.concat([c.update(m.pt), c.final(), c.getAuthTag()]);
        const got = Buffer.concat([batch.text(i, size), batch.tag(i, size, 16)]);
        if (!got.equals(want)) throw new Error('size ' + size + ' message ' + i + ' differs');
        checked++;
      }
      if (openBatch(key, batch.descs, slots) !== 0) throw new Error('open failed');
    }
    console.log(JSON.stringify({ checked }));
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    env: { ...process.env, VXNET_WASM_RELAXED: '0' },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { checked: number };
  assert.equal(out.checked, 1 + 3 + 1 + 16 + 2 + 1);
});

test('tampered ciphertext, tag, AAD or nonce is rejected and leaves no plaintext', () => {
  const slots = 64;
  const batch = new GcmBatch({ slots, maxText: 9000 });
  for (let round = 0; round < 8; round++) {
    const raw = crypto.randomBytes(round % 2 ? 32 : 16);
    const key = GcmKey.create(raw);
    const cases: Array<{ pt: Buffer; what: string }> = [];
    for (let i = 0; i < slots; i++) {
      const t = TAGS[i % 3]!;
      const what = ['ciphertext', 'tag', 'aad', 'nonce'][i % 4]!;
      const pt = crypto.randomBytes(what === 'ciphertext' ? 1 + crypto.randomInt(0, 9000) : randomSize());
      const nonce = crypto.randomBytes(12);
      const aad = crypto.randomBytes(what === 'aad' ? 1 + crypto.randomInt(0, 64) : crypto.randomInt(0, 65));
      const sealed = nodeSeal(raw, nonce, pt, aad, t);
      const bit = 1 << crypto.randomInt(0, 8);
      if (what === 'ciphertext') sealed[crypto.randomInt(0, pt.length)]! ^= bit;
      if (what === 'tag') sealed[pt.length + crypto.randomInt(0, t)]! ^= bit;
      if (what === 'aad') aad[crypto.randomInt(0, aad.length)]! ^= bit;
      if (what === 'nonce') nonce[crypto.randomInt(0, 12)]! ^= bit;
      batch.set(i, {
        nonce,
        aad,
        text: sealed.subarray(0, pt.length),
        tag: sealed.subarray(pt.length),
        tagLength: t,
      });
      cases.push({ pt, what });
      // The single-message API rejects it too.
      assert.throws(() => open(key, nonce, sealed, aad, t), authFailed, what);
    }
    assert.equal(openBatch(key, batch.descs, slots), slots);
    for (let i = 0; i < slots; i++) {
      assert.equal(batch.status(i), GCM_ERR_AUTH, cases[i]!.what);
      assert.ok(
        batch.text(i, cases[i]!.pt.length).every((b) => b === 0),
        `${cases[i]!.what}: text zeroed`,
      );
    }
  }
});

test('errors have stable codes', () => {
  for (const n of [0, 15, 24, 33]) {
    assert.throws(
      () => GcmKey.create(new Uint8Array(n)),
      (e) => isVxError(e, 'ERR_BAD_KEY_LENGTH'),
    );
  }
  const key = GcmKey.create(new Uint8Array(16));
  const nonce = new Uint8Array(12);
  assert.throws(
    () => seal(key, new Uint8Array(8), new Uint8Array(4)),
    (e) => isVxError(e, 'ERR_BAD_NONCE_LENGTH'),
  );
  assert.throws(
    () => seal(key, nonce, new Uint8Array(4), new Uint8Array(0), 4 as GcmTagLength),
    (e) => isVxError(e, 'ERR_BAD_TAG_LENGTH'),
  );
  assert.throws(
    () => open(key, nonce, new Uint8Array(7), new Uint8Array(0), 8),
    (e) => isVxError(e, 'ERR_CIPHERTEXT_TOO_SHORT'),
  );
  assert.throws(
    () => sealBatch(key, -5, 1),
    (e) => isVxError(e, 'ERR_INVALID_ARG'),
  );
  key.wipe();
  assert.throws(
    () => seal(key, nonce, new Uint8Array(4)),
    (e) => isVxError(e, 'ERR_KEY_WIPED'),
  );
});

test('several keys live at once (rotation): each opens only its own messages', () => {
  const a = GcmKey.create(crypto.randomBytes(16));
  const b = GcmKey.create(crypto.randomBytes(32));
  const nonce = crypto.randomBytes(12);
  const pt = crypto.randomBytes(300);
  const sa = seal(a, nonce, pt);
  const sb = seal(b, nonce, pt);
  assert.ok(open(a, nonce, sa).equals(pt));
  assert.ok(open(b, nonce, sb).equals(pt));
  assert.throws(() => open(b, nonce, sa), authFailed);
  assert.throws(() => open(a, nonce, sb), authFailed);
});
