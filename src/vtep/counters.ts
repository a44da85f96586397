// Counter names of the tunnel endpoint: the WASM counter blocks (assembly/counters.ts, CNT_*) and
// the I/O thread's syscall counters, as plain records for the API, `vxnet tunnel` and the daemon.
//
// Owns the naming only: a drop reason's name is its DROP_* constant in camelCase
// (DROP_UNKNOWN_PEER -> unknownPeer), so a new reason in assembly/constants.ts gets a name here
// without an edit.
import * as C from '../../assembly/constants.js';
import type { CounterBlock } from '../wasm/datapath.js';

const camel = (s: string) => s.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** Name of each DROP_* reason, by number (undefined for unused slots). */
export const DROP_NAMES: (string | undefined)[] = (() => {
  const out: (string | undefined)[] = new Array(C.DROP_REASONS).fill(undefined);
  for (const [k, v] of Object.entries(C)) {
    if (!k.startsWith('DROP_') || k === 'DROP_NONE' || k === 'DROP_REASONS' || typeof v !== 'number')
      continue;
    out[v] = camel(k.slice(5));
  }
  return out;
})();

/** The counters of one block (per VNI, per peer or global), drops by reason name. */
export interface Counters {
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
  floodPackets: number;
  replies: number;
  learned: number;
  learnRefused: number;
  /** Sum of every drop reason. */
  dropped: number;
  drops: Record<string, number>;
}

export function countersOf(b: CounterBlock): Counters {
  const drops: Record<string, number> = {};
  let dropped = 0;
  b.drops.forEach((n, r) => {
    const name = DROP_NAMES[r];
    if (name === undefined) return;
    drops[name] = n;
    dropped += n;
  });
  const { txPackets, txBytes, rxPackets, rxBytes, floodPackets, replies, learned, learnRefused } = b;
  return {
    txPackets,
    txBytes,
    rxPackets,
    rxBytes,
    floodPackets,
    replies,
    learned,
    learnRefused,
    dropped,
    drops,
  };
}

/** The I/O thread's own counters (what the kernel calls did), in a shared region of IO_FIELDS f64s. */
export const IO_FIELDS = [
  'udpRxDatagrams',
  'udpRxBytes',
  'udpRxTruncated',
  'udpTxDatagrams',
  'udpTxBytes',
  'udpTxErrors',
  'tapRxFrames',
  'tapRxBytes',
  'tapTxFrames',
  'tapTxErrors',
  'tsoFrames',
  'tsoSegments',
  'groFrames',
  'groSegments',
] as const;
export type IoCounters = Record<(typeof IO_FIELDS)[number], number>;
export const IO_STATS_BYTES = IO_FIELDS.length * 8;

export function readIoCounters(dv: DataView, at: number): IoCounters {
  const out = {} as IoCounters;
  IO_FIELDS.forEach((k, i) => {
    out[k] = dv.getFloat64(at + 8 * i, true);
  });
  return out;
}
