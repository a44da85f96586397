// `vxnet tunnel`: one VXLAN tunnel endpoint in the foreground, the userspace twin of
// `ip link add NAME type vxlan id VNI local IP remote IP dstport PORT`.
//
// Contract for scripts and tests: once forwarding, exactly one line `vxnet tunnel: ready` goes to
// stderr; on SIGUSR1, and once right before exit, one line of JSON goes to stdout with the
// counters (shape in the help text). SIGINT/SIGTERM remove the TAP and exit 0.
import { isIPv4, isIPv6 } from 'node:net';
import { espOverhead } from '../crypto/esp.js';
import type { EspKeySet } from '../crypto/esp-sas.js';
import { VxError } from '../errors.js';
import { ipJson } from '../kernel/exec.js';
import { DROP_NAMES, IO_FIELDS } from '../vtep/counters.js';
import type { HelperFailedEvent } from '../vtep/engine.js';
import { Vtep, type VtepStats } from '../vtep/vtep.js';
import { type Command, type Parsed, positionals } from './args.js';

const COUNTERS = [
  'txPackets',
  'txBytes',
  'rxPackets',
  'rxBytes',
  'floodPackets',
  'replies',
  'learned',
  'learnRefused',
  'dropped',
];

const SUMMARY = `Run one VXLAN tunnel endpoint in the foreground: creates the TAP NAME in this
network namespace (up, MTU = underlay device MTU - 50, or - 70 on IPv6; with --encrypt a further
29 for ESP as IP protocol 50, or 37 with --esp-encap udp) and forwards between it and the remotes
until SIGINT/SIGTERM, then removes the TAP and exits 0.

Prints "vxnet tunnel: ready" on stderr once forwarding. On SIGUSR1 and right before exit prints one
line of JSON on stdout:
  {"vni":N,"counters":{...},"peers":[{"addr":IP,"port":P,"learned":B,"counters":{...}}],
   "global":{...},"io":{...}}
"counters" (per VNI: what could be attributed to the VNI), each peer's "counters" and "global"
(every datagram, also those of unknown VNIs or malformed before a VNI is known) have:
  ${COUNTERS.join(', ')},
  drops: {${DROP_NAMES.filter((n) => n !== undefined).join(', ')}}
"io" (the I/O thread's syscalls): ${IO_FIELDS.join(', ')}.`;

export const tunnel: Command = {
  name: 'tunnel',
  usage: '--vni VNI --remote IP [--remote IP ...] [OPTIONS]',
  summary: SUMMARY,
  flags: {
    name: { type: 'string', arg: 'NAME', help: 'TAP name (default vx0)' },
    vni: { type: 'string', arg: 'VNI', help: 'VXLAN network identifier, 0..16777215' },
    local: { type: 'string', arg: 'IP', help: 'Local underlay address to bind (default any IPv4)' },
    remote: { type: 'list', arg: 'IP', help: 'Remote endpoint (repeatable: broadcast goes to each)' },
    port: { type: 'string', arg: 'PORT', help: 'Data-path UDP port, local and remote (default 4789)' },
    learning: { type: 'bool', help: 'Learn remote MACs and unknown sources from received traffic' },
    underlay: {
      type: 'string',
      arg: 'udp|raw',
      help: 'Send through the UDP socket or a raw IPv4 socket (default udp)',
    },
    mtu: { type: 'string', arg: 'N', help: 'TAP MTU (default: underlay MTU - 50)' },
    offload: { type: 'bool', help: 'TAP TSO + UDP GSO/GRO (default on; --offload=false for plain frames)' },
    realtime: {
      type: 'string',
      arg: 'PRIO',
      help: 'Run the I/O thread in SCHED_RR at PRIO 1..99 (lower tail latency on a busy host)',
    },
    neigh: { type: 'list', arg: 'IP=MAC', help: 'Static neighbour for the ARP proxy (repeatable)' },
    fdb: { type: 'list', arg: 'MAC=REMOTE', help: 'Static FDB entry: MAC is behind REMOTE (repeatable)' },
    encrypt: {
      type: 'bool',
      help: 'Carry the VNI only as ESP AES-GCM and drop cleartext VXLAN (needs --key, --local; excludes --learning)',
    },
    'esp-encap': {
      type: 'string',
      arg: 'ip|udp',
      help: 'With --encrypt: ESP as IP protocol 50 (ip, default) or in UDP port 4500 (udp, RFC 3948)',
    },
    'crypto-workers': {
      type: 'string',
      arg: 'N',
      help: 'With --encrypt: N helper threads take slices of big seal batches off the I/O thread (default 0)',
    },
    key: {
      type: 'list',
      arg: '[ID:]HEX',
      help: 'Shared secret (16..64 bytes, hex) the SAs are derived from; repeatable, the last is used to send',
    },
  },
  async run(p, _ctx) {
    positionals(p, tunnel, []);
    const o = options(p);
    const espBytes = o.encryption ? espOverhead({ udpEncap: o.encryption.encap === 'udp' }) : 0;
    const mtu = o.mtu ?? (await underlayMtu(o.local, o.remotes[0])) - espBytes;
    const vtep = await Vtep.open({ ...o, mtu });
    const print = () => process.stdout.write(`${JSON.stringify(report(vtep.stats()))}\n`);
    vtep.engine.on('helperFailed', (e: HelperFailedEvent) => {
      process.stderr.write(
        `vxnet tunnel: crypto helper ${e.index} failed (${e.error.message}); sealing on the I/O thread\n`,
      );
    });
    process.on('SIGUSR1', print);
    process.stderr.write('vxnet tunnel: ready\n');
    // A signal ends it cleanly; the I/O worker failing on its own ends it with that error (the
    // process would otherwise just run out of work and exit 0, with nothing said).
    const failure = await new Promise<Error | undefined>((resolve) => {
      process.once('SIGINT', () => resolve(undefined));
      process.once('SIGTERM', () => resolve(undefined));
      vtep.engine.finished.then(
        () => resolve(new VxError('ERR_IO_WORKER', 'the I/O worker stopped on its own')),
        (e: Error) => resolve(e),
      );
    });
    await vtep.close();
    process.off('SIGUSR1', print);
    print();
    if (failure) throw failure;
    return 0;
  },
};

function report(s: VtepStats) {
  return {
    vni: s.vni,
    counters: s.counters,
    peers: s.peers.map((p) => ({ addr: p.address, port: p.port, learned: p.learned, counters: p.counters })),
    global: s.global,
    io: s.io,
    ...(s.esp ? { esp: s.esp } : {}),
  };
}

function int(p: Parsed, name: string, min: number, max: number): number | undefined {
  const v = p.flags[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || !/^\d+$/.test(v) || n < min || n > max) {
    throw new VxError('ERR_BAD_OPTION', `--${name} must be an integer in ${min}..${max}, got "${String(v)}"`);
  }
  return n;
}

function pairs(p: Parsed, name: string): [string, string][] {
  return ((p.flags[name] as string[] | undefined) ?? []).map((item) => {
    const eq = item.indexOf('=');
    if (eq <= 0 || eq === item.length - 1) {
      throw new VxError('ERR_BAD_OPTION', `--${name} "${item}" must be ${tunnel.flags[name]!.arg}`);
    }
    return [item.slice(0, eq), item.slice(eq + 1)];
  });
}

function options(p: Parsed) {
  const vni = int(p, 'vni', 0, 0xffffff);
  if (vni === undefined) throw new VxError('ERR_BAD_OPTION', '--vni is required');
  const remotes = (p.flags.remote as string[] | undefined) ?? [];
  for (const r of remotes) {
    if (!isIPv4(r) && !isIPv6(r)) throw new VxError('ERR_BAD_OPTION', `--remote "${r}" is not an IP address`);
  }
  const local =
    (p.flags.local as string | undefined) ?? (remotes[0] && isIPv6(remotes[0]) ? '::' : '0.0.0.0');
  if (!isIPv4(local) && !isIPv6(local))
    throw new VxError('ERR_BAD_OPTION', `--local "${local}" is not an IP address`);
  const underlay = (p.flags.underlay as string | undefined) ?? 'udp';
  if (underlay !== 'udp' && underlay !== 'raw') {
    throw new VxError('ERR_BAD_OPTION', `--underlay must be "udp" or "raw", got "${underlay}"`);
  }
  const mtu = int(p, 'mtu', 68, 65521);
  const keys = keyRing(p, local);
  const realtime = int(p, 'realtime', 1, 99);
  const cryptoWorkers = int(p, 'crypto-workers', 0, 64);
  if (cryptoWorkers !== undefined && !keys)
    throw new VxError('ERR_BAD_OPTION', '--crypto-workers needs --encrypt');
  const encap = (p.flags['esp-encap'] as string | undefined) ?? 'ip';
  if (encap !== 'ip' && encap !== 'udp')
    throw new VxError('ERR_BAD_OPTION', `--esp-encap must be "ip" or "udp", got "${encap}"`);
  if (p.flags['esp-encap'] !== undefined && !keys)
    throw new VxError('ERR_BAD_OPTION', '--esp-encap needs --encrypt');
  if (keys && p.flags.learning === true)
    throw new VxError('ERR_BAD_OPTION', '--encrypt excludes --learning (a learned peer has no SA)');
  return {
    ...(realtime !== undefined ? { realtime } : {}),
    name: (p.flags.name as string | undefined) ?? 'vx0',
    vni,
    local,
    remotes,
    port: int(p, 'port', 1, 65535) ?? 4789,
    learning: p.flags.learning === true,
    underlay: underlay as 'udp' | 'raw',
    offload: p.flags.offload !== false,
    ...(mtu !== undefined ? { mtu } : {}),
    neigh: pairs(p, 'neigh').map(([ip, mac]) => ({ ip, mac })),
    fdb: pairs(p, 'fdb').map(([mac, remote]) => ({ mac, remote })),
    ...(keys
      ? {
          keys,
          encryption: {
            encap: encap as 'ip' | 'udp',
            ...(cryptoWorkers !== undefined ? { cryptoWorkers } : {}),
          },
        }
      : {}),
  };
}

/** --encrypt with --key [ID:]HEX ...: a static key ring (no store); the last key sends. */
function keyRing(p: Parsed, local: string): EspKeySet | undefined {
  const list = (p.flags.key as string[] | undefined) ?? [];
  if (p.flags.encrypt !== true) {
    if (list.length > 0) throw new VxError('ERR_BAD_OPTION', '--key needs --encrypt');
    return undefined;
  }
  if (list.length === 0) throw new VxError('ERR_BAD_OPTION', '--encrypt needs --key HEX');
  const keys = list.map((item, i) => {
    const m = /^(?:(\d+):)?([0-9a-fA-F]+)$/.exec(item);
    const hex = m?.[2] ?? '';
    if (!m || hex.length % 2 !== 0 || hex.length < 32 || hex.length > 128) {
      throw new VxError('ERR_BAD_OPTION', '--key must be [ID:]HEX with 16..64 bytes of hex');
    }
    return { id: m[1] !== undefined ? Number(m[1]) : i + 1, secret: Buffer.from(hex, 'hex') };
  });
  if (new Set(keys.map((k) => k.id)).size !== keys.length)
    throw new VxError('ERR_BAD_OPTION', '--key ids must differ');
  if (local === '0.0.0.0' || local === '::')
    throw new VxError('ERR_BAD_OPTION', '--encrypt needs --local IP');
  return { keys, primary: keys[keys.length - 1]!.id };
}

/** MTU of the device holding `local` (or routing to `remote`) minus the VXLAN overhead. */
async function underlayMtu(local: string, remote: string | undefined): Promise<number> {
  const overhead = isIPv6(local) ? 70 : 50;
  const rows = await ipJson<{ ifname: string; mtu: number; addr_info?: { local: string }[] }>(
    ['addr', 'show'],
    {
      action: 'list addresses',
    },
  );
  let dev = rows.find((r) => r.addr_info?.some((a) => a.local === local));
  if (!dev && remote !== undefined) {
    const routes = await ipJson<{ dev?: string }>(['route', 'get', remote], { action: `route to ${remote}` });
    dev = rows.find((r) => r.ifname === routes[0]?.dev);
  }
  return (dev?.mtu ?? 1500) - overhead;
}
