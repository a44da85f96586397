// Long-lived regions of linear memory.
//
// vxnet's WASM runs on the stub runtime: nothing is ever freed, and nothing is allocated per packet.
// Every table, packet buffer and key context is a region carved out once at setup by the host
// (through `vx_alloc`), and owned by the host object that asked for it. Workers instantiate the same
// module on the same shared memory and never allocate: they only run batch functions on pointers the
// main thread hands them. Static data (`memory.data`) is read-only, because every instantiation
// rewrites it.

/**
 * End of the highest region vx_alloc handed out. Memory above it was never written (the stub
 * runtime only moves forward, and fresh or grown pages are zero), so it is not filled again:
 * writing zeros would make every page of a 64K-entry table resident before it holds anything.
 */
let allocTop: usize = 0;

/** Allocates `size` bytes aligned to 64 (a cache line), zero-filled. Returns 0 when memory cannot grow. */
export function vx_alloc(size: usize): usize {
  const p = (heap.alloc(size + 64) + 63) & ~(<usize>63);
  if (p < allocTop) memory.fill(p, 0, min(size, allocTop - p));
  if (p + size > allocTop) allocTop = p + size;
  return p;
}

/**
 * Copies `n` regions listed at `list` as (dst, src, len) u32 triples, 12 bytes each: one call per
 * batch for the host's gathers (e.g. a segment's header slot and payload into one frame to seal).
 * memory.copy is a plain memmove; a JS copyWithin on the shared memory is a slower word-by-word
 * relaxed-atomic copy per call.
 */
export function copy_batch(list: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const e = list + <usize>i * 12;
    memory.copy(<usize>load<u32>(e), <usize>load<u32>(e, 4), <usize>load<u32>(e, 8));
  }
}
