// node --import tsx bench/dns.ts — the cost a container start pays for its embedded DNS resolver:
// attaching 127.0.0.11 inside a fresh namespace (bind UDP/TCP 53 + a forwarding socket there,
// sockets handed to this process, resolv.conf written).
//
// Impls: `binder` (one warm helper entering each namespace with setns(2), src/dns/server.ts) and
// `helper` (baseline: a helper process started per namespace under nsenter, a Node start-up each).
// Method: N namespaces made up front; the two impls alternate namespace by namespace (the machine
// is shared, so interleaving keeps load changes from favouring one); unit ms per attach, median
// (p90 on stderr). The binder's own start-up is paid before timing (the daemon starts it early).
//
// Usage: node --import tsx bench/dns.ts [--json] [--n 20]
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { createResolver } from '../src/dns/server.js';
import { deleteNetns, ensureNetns } from '../src/kernel/netns.js';
import { median, note, percentile, record, report } from './lib.js';

const nArg = process.argv.indexOf('--n');
const n = nArg > 0 ? Number(process.argv[nArg + 1]) : 20;
const tag = randomBytes(3).toString('hex');
const names = Array.from({ length: 2 * n + 1 }, (_, i) => `vxbdns-${tag}-${i}`);
const lookup = () => [];
const warm = createResolver({ upstreams: [], lookup });
const own = createResolver({ upstreams: [], lookup, binder: false });
try {
  for (const ns of names) await ensureNetns(ns);
  await warm.attachResolver({ netns: names[2 * n]!, asker: { networks: [] } });
  const times: Record<string, number[]> = { binder: [], helper: [] };
  for (let i = 0; i < n; i++) {
    for (const [impl, r, ns] of [
      ['binder', warm, names[2 * i]!],
      ['helper', own, names[2 * i + 1]!],
    ] as const) {
      const t0 = performance.now();
      await r.attachResolver({ netns: ns, asker: { networks: [] } });
      times[impl]!.push(performance.now() - t0);
    }
  }
  if (warm.bound.helper > 0) note(`warning: the binder fell back to a helper ${warm.bound.helper} times`);
  for (const impl of ['binder', 'helper']) {
    const xs = times[impl]!;
    note(
      `${impl}: median ${median(xs).toFixed(1)} ms, p90 ${percentile(xs, 90).toFixed(1)} ms over ${xs.length}`,
    );
    record({ bench: 'dns-attach', case: 'fresh-netns', impl, value: median(xs), unit: 'ms' });
  }
  report();
} finally {
  await warm.close();
  await own.close();
  for (const ns of names) {
    await deleteNetns(ns);
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
}
