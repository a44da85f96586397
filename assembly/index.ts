// The WASM module's exports: only a list. Each primitive lives in its own file.
export { vx_alloc } from './mem';
