// npm run bench:core — the WASM core next to its plain-TypeScript reference, one core, no I/O.
// Each bench module in bench/core/ states its own method in its header comment.
// Usage: npm run bench:core [-- --json] [-- --only NAME[,NAME]]
import { note, report } from './lib.js';

const BENCHES = ['checksum', 'vxlan', 'fdb', 'fdb-memory', 'alloc'] as const;

const onlyIdx = process.argv.indexOf('--only');
const only = onlyIdx > 0 ? new Set(process.argv[onlyIdx + 1]?.split(',')) : undefined;

for (const name of BENCHES) {
  if (only && !only.has(name)) continue;
  note(`bench:core ${name} ...`);
  const mod = (await import(`./core/${name}.js`)) as { run(): Promise<void> | void };
  await mod.run();
}
report();
