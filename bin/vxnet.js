#!/usr/bin/env node
// Entry point of the `vxnet` command: runs the compiled CLI from dist/, or the TypeScript
// sources through tsx in a development checkout that has not been built.
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
