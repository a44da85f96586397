#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=1 --heap-growing-percent=10
// Entry point of the `vxnet` command: runs the compiled CLI from dist/, or the TypeScript
// sources through tsx in a development checkout that has not been built.
// The flags (V8 and glibc read them only at start, so they are here and not in the daemon's
// code) keep the daemon's RSS near its live data (measured with 1000 endpoints: live JS heap
// ~20 MB, the rest was slack): young generation semi-spaces of 1 MB instead of up to 16 MB; an
// old generation allowed to grow 10% past what the last full GC kept instead of V8's 1.1-4x
// (with 1 MB semi-spaces short-lived objects are promoted early, and the old space filled with
// them); at most 2 malloc arenas instead of 8 per core (one per thread that ever allocated:
// libuv's pool, V8's platform threads, the I/O worker). The daemon drops MALLOC_ARENA_MAX from
// its environment once running, so containers and helpers do not inherit it. For the
// short-lived CLI commands none of it makes a measurable difference.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const built = `${root}dist/src/cli/main.js`;
if (existsSync(built)) {
  await import(built);
} else {
  await import('tsx/esm/api').then((tsx) => tsx.register());
  await import(`${root}src/cli/main.ts`);
}
