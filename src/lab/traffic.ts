// Traffic between the containers of a lab pair (src/lab/pair.ts), for the datapath tests and
// bench:e2e: ping (with loss and RTTs), a TCP transfer whose content hash is compared end to end,
// and UDP datagrams of arbitrary bytes sent from inside a namespace (hostile-input tests).
//
// Owns: the small helper processes that generate and check that traffic. Each runs inside its
// namespace through `ip netns exec` (Node cannot setns) and is killed when it overstays its
// timeout; nothing here touches a namespace it was not given.
import { spawn } from 'node:child_process';
import { unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkNetnsName } from '../kernel/exec.js';

export interface ProcResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Runs `cmd args` inside `ns` and collects its output; SIGKILLs it after `timeoutMs`. */
export function runIn(
  ns: string,
  cmd: string,
  args: string[],
  o: { timeoutMs?: number; input?: string } = {},
): Promise<ProcResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', checkNetnsName(ns), cmd, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 30000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(o.input ?? '');
  });
}

export interface PingResult {
  sent: number;
  received: number;
  /** Round-trip times in microseconds, in order. */
  rttsUs: number[];
}

/** `ping -c count -i interval` from namespace `ns` to `dst`; never throws on loss. */
export async function ping(
  ns: string,
  dst: string,
  o: { count?: number; intervalS?: number; waitS?: number; size?: number } = {},
): Promise<PingResult> {
  const count = o.count ?? 3;
  const interval = o.intervalS ?? 0.2;
  const args = ['-n', '-c', String(count), '-i', String(interval), '-W', String(o.waitS ?? 1)];
  if (o.size !== undefined) args.push('-s', String(o.size), '-M', 'do');
  const r = await runIn(ns, 'ping', [...args, dst], {
    timeoutMs: (count * interval + (o.waitS ?? 1) + 10) * 1000,
  });
  return parsePing(r.stdout + r.stderr, ns, dst);
}

/** A ping running until stop() (SIGINT: ping prints its summary and exits). */
export function startPing(
  ns: string,
  dst: string,
  o: { intervalS?: number } = {},
): { stop(): Promise<PingResult> } {
  const args = ['-n', '-i', String(o.intervalS ?? 0.2), '-W', '1', dst];
  const child = spawn('ip', ['netns', 'exec', checkNetnsName(ns), 'ping', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  return {
    async stop() {
      child.kill('SIGINT');
      const kill = setTimeout(() => child.kill('SIGKILL'), 3000);
      await closed;
      clearTimeout(kill);
      return parsePing(out, ns, dst);
    },
  };
}

function parsePing(out: string, ns: string, dst: string): PingResult {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  if (!m) throw new Error(`ping from ${ns} to ${dst} printed no summary: ${out}`);
  return {
    sent: Number(m[1]),
    received: Number(m[2]),
    rttsUs: [...out.matchAll(/time=([0-9.]+) ms/g)].map((x) => Number(x[1]) * 1000),
  };
}

/** Pings once a `intervalMs` until one answer comes back (ARP and bridges settling); throws after `timeoutMs`. */
export async function waitPing(ns: string, dst: string, timeoutMs = 10000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if ((await ping(ns, dst, { count: 1, waitS: 1 })).received === 1) return;
  }
  throw new Error(`no ping answer from ${dst} in ${ns} within ${timeoutMs} ms`);
}

// The receiving end: listens, hashes everything one connection sends, prints {bytes, sha256}.
const RECEIVER = `
const net = require('node:net'), crypto = require('node:crypto');
const [host, port] = process.argv.slice(1);
const srv = net.createServer((s) => {
  const h = crypto.createHash('sha256'); let n = 0;
  s.on('data', (d) => { h.update(d); n += d.length; });
  s.on('end', () => { console.log(JSON.stringify({ bytes: n, sha256: h.digest('hex') })); s.end(); srv.close(); });
  s.on('error', (e) => { console.error(String(e)); process.exit(2); });
});
srv.listen(Number(port), host, () => console.error('listening'));`;

// The sending end: streams pseudo-random bytes (fresh per run), prints what it sent and its hash.
const SENDER = `
const net = require('node:net'), crypto = require('node:crypto');
const [host, port, total] = process.argv.slice(1);
const h = crypto.createHash('sha256'); let left = Number(total);
const s = net.connect(Number(port), host, () => {
  const pump = () => {
    while (left > 0) {
      const chunk = crypto.randomBytes(Math.min(left, 65536)); left -= chunk.length; h.update(chunk);
      if (!s.write(chunk)) return s.once('drain', pump);
    }
    s.end();
  };
  pump();
});
s.on('close', () => console.log(JSON.stringify({ bytes: Number(total), sha256: h.digest('hex') })));
s.on('error', (e) => { console.error(String(e)); process.exit(2); });`;

export interface TransferResult {
  sent: { bytes: number; sha256: string };
  received: { bytes: number; sha256: string };
  seconds: number;
}

/** Sends `bytes` random bytes over TCP from namespace `from` to `toIp`:`port` in namespace `to`. */
export async function tcpTransfer(
  from: string,
  to: string,
  toIp: string,
  o: { bytes: number; port?: number; timeoutMs?: number },
): Promise<TransferResult> {
  const port = String(o.port ?? 5201);
  const timeoutMs = o.timeoutMs ?? 60000;
  const bind = toIp.includes(':') ? '::' : '0.0.0.0';
  const rx = spawn(
    'ip',
    ['netns', 'exec', checkNetnsName(to), process.execPath, '-e', RECEIVER, bind, port],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let rxOut = '';
  let rxErr = '';
  rx.stdout.on('data', (d: Buffer) => {
    rxOut += d.toString();
  });
  const listening = new Promise<void>((resolve, reject) => {
    rx.stderr.on('data', (d: Buffer) => {
      rxErr += d.toString();
      if (rxErr.includes('listening')) resolve();
    });
    rx.once('close', () => reject(new Error(`TCP receiver in ${to} exited: ${rxErr}`)));
  });
  const rxDone = new Promise<void>((resolve) => rx.once('close', () => resolve()));
  const timer = setTimeout(() => rx.kill('SIGKILL'), timeoutMs);
  try {
    await listening;
    const t0 = performance.now();
    const tx = await runIn(from, process.execPath, ['-e', SENDER, toIp, port, String(o.bytes)], {
      timeoutMs,
    });
    await rxDone;
    const seconds = (performance.now() - t0) / 1000;
    if (tx.code !== 0)
      throw new Error(`TCP sender in ${from} failed (${tx.code ?? tx.signal}): ${tx.stderr}`);
    if (!rxOut.trim()) throw new Error(`TCP receiver in ${to} reported nothing: ${rxErr}`);
    return { sent: JSON.parse(tx.stdout), received: JSON.parse(rxOut), seconds };
  } finally {
    clearTimeout(timer);
    rx.kill('SIGKILL');
  }
}

// Sends each datagram of a JSON file ([base64, ...]) from one socket, 1 ms apart, then exits.
const DGRAM_SENDER = `
const dgram = require('node:dgram'), fs = require('node:fs');
const [file, host, port] = process.argv.slice(1);
const list = JSON.parse(fs.readFileSync(file, 'utf8')).map((b) => Buffer.from(b, 'base64'));
const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
s.bind(0, () => {
  s.setSendBufferSize(4 << 20);
  let i = 0;
  const next = () => {
    if (i === list.length) return s.close();
    s.send(list[i++], Number(port), host, (e) => { if (e) { console.error(String(e)); process.exit(2); } setTimeout(next, 1); });
  };
  next();
});`;

/** Sends `datagrams` as UDP payloads from inside namespace `ns` to `host`:`port`, in order. */
export async function sendDatagrams(
  ns: string,
  host: string,
  port: number,
  datagrams: Uint8Array[],
): Promise<void> {
  const file = join(tmpdir(), `vxnet-dgrams-${process.pid}-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(datagrams.map((d) => Buffer.from(d).toString('base64'))));
  try {
    const r = await runIn(ns, process.execPath, ['-e', DGRAM_SENDER, file, host, String(port)], {
      timeoutMs: 30000,
    });
    if (r.code !== 0) throw new Error(`datagram sender in ${ns} failed (${r.code ?? r.signal}): ${r.stderr}`);
  } finally {
    unlinkSync(file);
  }
}
