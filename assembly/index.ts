// The WASM module's exports: only a list. Each primitive lives in its own file.
export { vx_alloc } from './mem';
export { csum_batch, csum_partial_at, csum_replace16, csum_replace32, csum_verify_batch } from './checksum';
export { parse_batch } from './parse';
export { outer_v4_batch, vxlan_pull_batch } from './outer';
export { gcm_init, gcm_wipe, gcm_seal_batch, gcm_open_batch } from './gcm';
