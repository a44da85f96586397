// bench fdb-memory: WASM memory taken by an FDB sized for 1,000,000 entries, and proof that filling
// it takes no more.
//
// Method: a Datapath created with fdbCapacity 1,000,000 and the other tables at their minimum;
// the figure is the bytes of its FDB slot array (power-of-two slots, at most 8 in 9 used: 2^21
// slots of 16 bytes), in MB (1e6 bytes). The table is then filled with 1,000,000 distinct entries
// and the bench checks that WASM memory did not grow while filling (entries live in the slots:
// nothing is allocated per entry). No timing, one run. There is no TS figure: a JS Map's memory
// is not in WASM memory (for scale, a note prints the JS heap growth of an equal Map).
import { Datapath } from '../../src/wasm/datapath.js';
import { core } from '../../src/wasm/module.js';
import { note, record } from '../lib.js';

const N = 1_000_000;

export function run(): void {
  const dp = Datapath.create({ fdbCapacity: N, maxPeers: 1, maxVnis: 1, neighCapacity: 1, eventRingSize: 1 });
  const peer = dp.addPeer({ address: '192.0.2.1' });
  const before = core().memory.buffer.byteLength;
  const batch: { vni: number; mac: Uint8Array; peer: number }[] = [];
  for (let i = 0; i < N; i++) {
    batch.push({
      vni: 1 + (i % 16),
      mac: Uint8Array.from([0x02, 0, i >>> 24, (i >>> 16) & 0xff, (i >>> 8) & 0xff, i & 0xff]),
      peer,
    });
    if (batch.length === 65536 || i === N - 1) {
      dp.addFdb(batch);
      batch.length = 0;
    }
  }
  if (dp.fdbCount !== N) throw new Error(`fdb-memory: ${dp.fdbCount} entries, expected ${N}`);
  const grown = core().memory.buffer.byteLength - before;
  if (grown !== 0) throw new Error(`fdb-memory: WASM memory grew by ${grown} bytes while filling`);
  const m = dp.memoryBytes();
  note(
    `  fdb-memory: FDB slots ${m.fdb} B, all datapath tables ${m.total} B, growth while filling ${grown} B`,
  );
  const heap0 = process.memoryUsage().heapUsed;
  const map = new Map<number, Map<number, number>>();
  for (let i = 0; i < N; i++) {
    let v = map.get(1 + (i % 16));
    if (!v) {
      v = new Map();
      map.set(1 + (i % 16), v);
    }
    v.set(i * 256 + 2, peer);
  }
  note(
    `  fdb-memory: for scale, an equal JS Map grew the JS heap by ${((process.memoryUsage().heapUsed - heap0) / 1e6).toFixed(1)} MB`,
  );
  record({ bench: 'fdb-memory', case: String(N), impl: 'wasm', value: m.fdb / 1e6, unit: 'MB' });
}
