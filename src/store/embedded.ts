// The embedded store: the default cluster store of a single host, with no external service.
//
// Owns: putting the engine (core.ts) on top of the crash-safe journal (wal.ts). A write is
// acknowledged only after its journal record is fdatasync'd, so `kill -9` at any instant loses
// no acknowledged write; opening the dir recovers the snapshot plus the journal's valid prefix.
// One process at a time may open a state dir (ERR_STORE_LOCKED otherwise).

import { CoreStore } from './core.js';
import type { Store } from './store.js';
import { type RecoveryInfo, Wal } from './wal.js';

export interface EmbeddedStoreOptions {
  /** The state directory (created 0700 if missing). */
  dir: string;
  /** Compact the journal into a snapshot once it reaches this many bytes (default 8 MiB). */
  compactBytes?: number;
  /** Revisions of events kept for watchers starting in the past (default 10000). */
  historyLimit?: number;
}

export interface EmbeddedStore extends Store {
  /** What opening the dir found: records replayed and bytes of torn tail cut off. */
  readonly recovery: RecoveryInfo;
}

export async function openEmbeddedStore(options: EmbeddedStoreOptions): Promise<EmbeddedStore> {
  const { wal, state, recovery } = await Wal.open(options);
  const store = new CoreStore({ state, journal: wal, historyLimit: options.historyLimit });
  return Object.assign(store, { recovery });
}
