#!/usr/bin/env -S node --max-semi-space-size=1
// Entry point of the `vxnet` command: runs the compiled CLI from dist/, or the TypeScript
// sources through tsx in a development checkout that has not been built.
// The flag (V8 reads it only at start, so it is here and not in the daemon's code): young
// generation semi-spaces of 1 MB instead of up to 16 MB. The daemon's live heap is ~16 MB even
// with 1000 endpoints; the rest of its RSS without the flag was garbage not yet collected. For
// the short-lived CLI commands it makes no measurable difference.
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
