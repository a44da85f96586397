// bench alloc: growth of WASM memory over 10,000,000 packets through encap and decap.
//
// Method: the vxlan bench's setup (one VNI, 10,000 FDB entries, 16 peers, learning on, batch of
// 64 frames of 128 bytes); one warm-up round of 64 batches, then memory.buffer.byteLength is read,
// 10,000,000 packets go through encap+decap (156,250 batches; every 1,024 batches the events are
// drained and an ageing sweep of 4,096 slots runs, as a daemon would), and the size is read again.
// The figure is the difference in bytes; it must be 0 (nothing is allocated per packet or per
// batch: the stub runtime's heap only grows when the host asks for a region). One run.
import { core } from '../../src/wasm/module.js';
import { note, record } from '../lib.js';
import { BATCH, setup } from './vxlan.js';

const PACKETS = 10_000_000;

export function run(): void {
  const s = setup();
  const batch = { descs: s.descs };
  for (let i = 0; i < 64; i++) {
    s.dp.encap(batch, BATCH, 1);
    s.dp.decap(batch, BATCH, 1);
  }
  const mem = core().memory;
  const before = mem.buffer.byteLength;
  const batches = Math.ceil(PACKETS / BATCH);
  const t0 = performance.now();
  for (let i = 0; i < batches; i++) {
    s.dp.encap(batch, BATCH, 2 + (i >> 16));
    s.dp.decap(batch, BATCH, 2 + (i >> 16));
    if ((i & 1023) === 0) {
      s.dp.drainEvents();
      s.dp.age(2 + (i >> 16), { budget: 4096 });
    }
  }
  const grown = mem.buffer.byteLength - before;
  note(
    `  alloc: ${batches * BATCH} packets in ${((performance.now() - t0) / 1000).toFixed(2)} s, WASM memory ${before} -> ${mem.buffer.byteLength} B`,
  );
  record({ bench: 'alloc', case: 'encap+decap-10M', impl: 'wasm', value: grown, unit: 'bytes' });
}
