// Long-lived regions of linear memory.
//
// vxnet's WASM runs on the stub runtime: nothing is ever freed, and nothing is allocated per packet.
// Every table, packet buffer and key context is a region carved out once at setup by the host
// (through `vx_alloc`), and owned by the host object that asked for it. Workers instantiate the same
// module on the same shared memory and never allocate: they only run batch functions on pointers the
// main thread hands them. Static data (`memory.data`) is read-only, because every instantiation
// rewrites it.

/** Allocates `size` bytes aligned to 64 (a cache line), zero-filled. Returns 0 when memory cannot grow. */
export function vx_alloc(size: usize): usize {
  const p = (heap.alloc(size + 64) + 63) & ~(<usize>63);
  memory.fill(p, 0, size);
  return p;
}
