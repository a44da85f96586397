// vxnet as a library: the public API. Everything exported here is documented and typed.

export * as constants from '../assembly/constants.js';
export { isVxError, VxError, type VxErrorCode } from './errors.js';
export { core as wasmCore, instantiate as instantiateWasm, type WasmCore } from './wasm/module.js';
