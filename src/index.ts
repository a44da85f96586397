// vxnet as a library: the public API. Everything exported here is documented and typed.

export * as constants from '../assembly/constants.js';
export { GcmBatch, type GcmBatchOptions, type GcmSlotInput } from './crypto/batch.js';
export {
  ESP_DROP_NAMES,
  Esp,
  type EspCounters,
  type EspDirection,
  type EspHandle,
  type EspOpenOptions,
  type EspOptions,
  type EspSaInfo,
  type EspSaOptions,
  type EspSealOptions,
  espOverhead,
} from './crypto/esp.js';
export {
  type DerivedSa,
  deriveSa,
  type EspKeySet,
  EspSaManager,
  type EspSaManagerOptions,
} from './crypto/esp-sas.js';
export {
  GcmKey,
  type GcmMessage,
  type GcmTagLength,
  gcmStatus,
  open as gcmOpen,
  openBatch as gcmOpenBatch,
  seal as gcmSeal,
  sealBatch as gcmSealBatch,
  writeGcmDescriptor,
} from './crypto/gcm.js';
export { GcmPool, type GcmPoolOptions } from './crypto/pool.js';
export { isVxError, VxError, type VxErrorCode } from './errors.js';
export type { Counters, IoCounters } from './vtep/counters.js';
export {
  type EngineEvent,
  type EngineOptions,
  type EngineStats,
  type FdbView,
  type PeerView,
  type PortOptions,
  type Remote,
  type TapPort,
  VtepEngine,
} from './vtep/engine.js';
export { Vtep, type VtepOptions, type VtepStats } from './vtep/vtep.js';
export {
  Datapath,
  type DatapathCounters,
  type DatapathEvent,
  type DatapathOptions,
  type FdbEntry,
  formatMac,
  nowSeconds,
  parseMac,
  readFloodList,
} from './wasm/datapath.js';
export { core as wasmCore, instantiate as instantiateWasm, type WasmCore } from './wasm/module.js';
