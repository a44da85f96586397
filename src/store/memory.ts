// The in-memory store: the engine with no journal. For unit tests and tools that need a Store
// without a disk; it has the embedded store's semantics exactly, minus durability.

import { CoreStore } from './core.js';
import { KvState } from './state.js';
import type { Store } from './store.js';

export function createMemoryStore(options: { historyLimit?: number } = {}): Store {
  return new CoreStore({ state: new KvState(), ...options });
}
