// The WASM module's exports: only a list. Each primitive lives in its own file.
export { copy_batch, vx_alloc } from './mem';
export { csum_batch, csum_partial_at, csum_replace16, csum_replace32, csum_verify_batch } from './checksum';
export { parse_batch } from './parse';
export { outer_v4_batch, vxlan_pull_batch } from './outer';
export {
  dp_setup,
  dp_encap,
  dp_decap,
  dp_peer_add,
  dp_peer_remove,
  dp_port_add,
  dp_port_remove,
  dp_flood_add,
  dp_flood_remove,
  dp_fdb_flush_vni,
  dp_age,
} from './datapath';
export { fdb_add_batch, fdb_remove_batch, fdb_lookup_batch, fdb_learn_batch } from './fdb';
export { neigh_add_batch, neigh_remove_batch } from './neigh';
export { gcm_init, gcm_wipe, gcm_seal_batch, gcm_open_batch } from './gcm';
export { esp_setup, esp_sa_add, esp_sa_remove, esp_bind, esp_seal_batch, esp_open_batch, esp_gcm_staged } from './esp';
export { tso_split_batch, gro_batch } from './offload';
