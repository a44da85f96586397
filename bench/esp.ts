// npm run bench:esp — ESP (RFC 4303 + RFC 4106 AES-128-GCM, 8-byte ICV) seal+open of VXLAN UDP
// datagrams: vxnet's WASM batches next to node:crypto doing the same per packet.
//
// Cases `esp-seal+open` (each packet sealed once and opened once per unit) and `esp-seal` (sealed
// only: the sender's share), at 64 and 1400 bytes of UDP datagram (the ESP payload), unit MB/s of
// payload:
// - `wasm`: one thread; per call, one Esp.seal and one Esp.open over a batch of 64 descriptors
//   already in WASM memory (ESP header, IV, padding, trailer, ICV, SPI lookup, replay window,
//   padding check included). Open restores the datagram in place, so the next call only resets the
//   64 descriptors (included in the time).
// - `wasm-gcm-only`: the GCM core's sealBatch + openBatch on the same text lengths, tags and AAD,
//   without ESP: the floor ESP builds on (the difference is ESP's own cost).
// - `wasm-split1` (esp-seal only): `wasm` with one crypto helper thread (src/crypto/esp-split.ts):
//   each 64-packet batch is staged on this thread, then half its GCM work runs on the helper,
//   joined with Atomics.wait (what --crypto-workers 1 does on the I/O thread).
// - `node-crypto` (baseline): per packet, the ESP header and trailer built in a Buffer, then
//   createCipheriv + setAAD + update + final + getAuthTag, then createDecipheriv + setAAD +
//   setAuthTag + update + final — the GCM work alone, with no SA lookup or replay window, the way a
//   per-packet Node user would call OpenSSL (AES-NI).
// Method: impls interleaved in ROUNDS rounds of RUN_MS each after a warm-up round; median round.
// The machine is shared (2 cores), so compare the ratio within one run.
//
// Usage: npm run bench:esp [-- --json]
import crypto from 'node:crypto';
import {
  DESC_ARG,
  DESC_LEN,
  DESC_PTR,
  DESC_VERDICT,
  VERDICT_LOCAL,
  VERDICT_SEND,
} from '../assembly/constants.js';
import { GcmBatch } from '../src/crypto/batch.js';
import { Esp } from '../src/crypto/esp.js';
import { EspHelpers, EspSplitSealer, espSplitRegions } from '../src/crypto/esp-split.js';
import { GcmKey, openBatch, sealBatch } from '../src/crypto/gcm.js';
import { PacketBatch } from '../src/io/batch.js';
import { wasmBuild } from '../src/wasm/module.js';
import { median, note, record, report } from './lib.js';

const SIZES = [64, 1400];
const BATCH = 64;
const ICV = 8;
const RUN_MS = 150;
const ROUNDS = 7;

const helpers: EspHelpers[] = [];

function wasmRunner(size: number, open = true, split = 0): () => void {
  const esp = new Esp({ maxSas: 4, maxPeers: 4 });
  let sealer: EspSplitSealer | undefined;
  if (split > 0) {
    const h = espSplitRegions(esp.core, esp, split, 1);
    helpers.push(new EspHelpers(esp.core, h));
    sealer = new EspSplitSealer(esp, h);
  }
  const key = crypto.randomBytes(16);
  const salt = crypto.randomBytes(4);
  esp.addSa({ spi: 0x1001, key, salt, icvLen: ICV, dir: 'in' });
  esp.bindPeer(0, esp.addSa({ spi: 0x1001, key, salt, icvLen: ICV, dir: 'out' }));
  const batch = new PacketBatch({ capacity: BATCH, frameCapacity: 2048 });
  const c = esp.core;
  for (let i = 0; i < BATCH; i++) c.u8().set(crypto.randomBytes(size), batch.frame(i));
  return () => {
    const dv = c.dv();
    for (let i = 0; i < BATCH; i++) {
      const d = batch.desc(i);
      dv.setUint32(d + DESC_PTR, batch.frame(i), true);
      dv.setUint32(d + DESC_LEN, size, true);
      dv.setUint32(d + DESC_VERDICT, VERDICT_SEND, true);
      dv.setUint32(d + DESC_ARG, 0, true);
    }
    if (sealer) sealer.seal(batch.descs, BATCH);
    else esp.seal(batch.descs, BATCH);
    if (!open) return;
    if (esp.open(batch.descs, BATCH) !== BATCH) throw new Error('ESP open failed in the bench');
    if (dv.getUint32(batch.desc(0) + DESC_VERDICT, true) !== VERDICT_LOCAL) throw new Error('not opened');
  };
}

/** The GCM core alone on the same shapes (text = payload + trailer, 8-byte AAD, 8-byte tag): ESP's floor. */
function gcmRunner(size: number): () => void {
  const key = GcmKey.create(crypto.randomBytes(16));
  const textLen = size + ((4 - ((size + 2) % 4)) % 4) + 2;
  const b = new GcmBatch({ slots: BATCH, maxText: textLen, maxAad: 8 });
  for (let i = 0; i < BATCH; i++) {
    const nonce = crypto.randomBytes(12);
    b.set(i, { nonce, text: crypto.randomBytes(textLen), aad: crypto.randomBytes(8), tagLength: ICV });
  }
  return () => {
    sealBatch(key, b.descs, BATCH);
    if (openBatch(key, b.descs, BATCH) !== 0) throw new Error('GCM open failed in the bench');
  };
}

function nodeRunner(size: number, open = true): () => void {
  const key = crypto.randomBytes(16);
  const salt = crypto.randomBytes(4);
  const payloads = Array.from({ length: BATCH }, () => crypto.randomBytes(size));
  let seq = 0;
  return () => {
    for (const p of payloads) {
      seq++;
      const hdr = Buffer.alloc(16);
      hdr.writeUInt32BE(0x1001, 0);
      hdr.writeUInt32BE(seq >>> 0, 4);
      hdr.writeBigUInt64BE(BigInt(seq), 8);
      const pad = (4 - ((size + 2) % 4)) % 4;
      const trailer = Buffer.from([1, 2, 3].slice(0, pad).concat([pad, 17]));
      const nonce = Buffer.concat([salt, hdr.subarray(8)]);
      const e = crypto.createCipheriv('aes-128-gcm', key, nonce, { authTagLength: ICV });
      e.setAAD(hdr.subarray(0, 8));
      const ct = Buffer.concat([e.update(p), e.update(trailer), e.final()]);
      const tag = e.getAuthTag();
      if (!open) continue;
      const d = crypto.createDecipheriv('aes-128-gcm', key, nonce, { authTagLength: ICV });
      d.setAAD(hdr.subarray(0, 8));
      d.setAuthTag(tag);
      d.update(ct);
      d.final();
    }
  };
}

/** MB/s of wall time; adds the MB per CPU-second of this (single-threaded) process to `cpu`. */
function timeRound(fn: () => void, bytes: number, cpu: number[]): number {
  let calls = 0;
  const u0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(RUN_MS * 1e6);
  let t = t0;
  while (t < end) {
    fn();
    calls++;
    t = process.hrtime.bigint();
  }
  const u = process.cpuUsage(u0);
  cpu.push((calls * bytes) / ((u.user + u.system) / 1e6) / 1e6);
  return (calls * bytes) / (Number(t - t0) / 1e9) / 1e6;
}

const CASES = [
  { bench: 'esp-seal+open', open: true },
  { bench: 'esp-seal', open: false },
];

note(`WASM build: ${wasmBuild()} (VXNET_WASM_RELAXED=0 selects the plain one)`);
for (const { bench, open } of CASES) {
  for (const size of SIZES) {
    const impls = [
      { impl: 'wasm', fn: wasmRunner(size, open) },
      ...(open ? [] : [{ impl: 'wasm-split1', fn: wasmRunner(size, open, 1) }]),
      ...(open ? [{ impl: 'wasm-gcm-only', fn: gcmRunner(size) }] : []),
      { impl: 'node-crypto', fn: nodeRunner(size, open) },
    ];
    const xs = impls.map(() => [] as number[]);
    const cpu = impls.map(() => [] as number[]);
    for (let r = 0; r <= ROUNDS; r++) {
      impls.forEach((m, i) => {
        const c: number[] = [];
        const v = timeRound(m.fn, BATCH * size, c);
        if (r > 0) {
          xs[i]!.push(v);
          cpu[i]!.push(c[0]!);
        }
      });
    }
    const per = impls.map((m, i) => `${m.impl} ${median(cpu[i]!).toFixed(1)}`).join(', ');
    note(`${bench} ${size} B, MB per CPU-second: ${per}`);
    impls.forEach((m, i) => {
      record({ bench, case: `${size}`, impl: m.impl, value: median(xs[i]!), unit: 'MB/s' });
    });
  }
}
await Promise.all(helpers.map((h) => h.close()));
report();
