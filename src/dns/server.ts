// The embedded DNS resolver: what answers at 127.0.0.11 inside every container, as Docker's does.
//
// Owns: answering queries for container names and aliases from the daemon's lookup, forwarding
// everything else to upstream resolvers, and being present inside each container's namespace.
// Why shaped so:
// - One daemon process serves every container. Node cannot enter a namespace, so a helper
//   process binds 127.0.0.11:53 (UDP and TCP) and an unbound-port UDP socket for forwarding
//   inside NS and hands the three sockets back over the child_process IPC channel: the warm
//   binder (one long-lived helper that enters each namespace with setns(2) through koffi, ~2 ms
//   per attach), or, when it cannot run, a short helper per namespace (`nsenter --net=... node
//   -e ...`, a Node start-up each). The sockets keep their namespace, so the
//   daemon answers on them directly; each attachment knows its asker without any lookup of the
//   source address. `/etc/netns/NS/resolv.conf` says `nameserver 127.0.0.11`, and
//   `ip netns exec NS` mounts it over /etc/resolv.conf for what runs in the container.
// - Scoping is the lookup's job: it gets the asker (the networks the container is on) and the
//   name, and returns the IPv4 addresses visible to that asker (none for a container on other
//   networks). A name it knows gets an authoritative answer: its A records, or no data for other
//   types. An unknown single-label name (a container name) is NXDOMAIN here and never leaks
//   upstream; other names are forwarded.
// - Forwarding goes out of the container's own namespace (like Docker, the container's network
//   reaches the upstream), except loopback upstreams (e.g. 127.0.0.53), which only exist in the
//   daemon's namespace and are reached from there. Each forwarded query gets a fresh random id,
//   the answer must come from the upstream asked and repeat the question, and an upstream that
//   does not answer in `forwardTimeoutMs` is skipped for the next one; when all fail, SERVFAIL.

import { type ChildProcess, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { VxError } from '../errors.js';
import { checkNetnsName } from '../kernel/exec.js';
import {
  buildMessage,
  CLASS_IN,
  CLASSIC_UDP_BYTES,
  encodeName,
  ipv4Data,
  type Message,
  parseMessage,
  peekHeader,
  type Question,
  RCODE_FORMERR,
  RCODE_NOTIMP,
  RCODE_NXDOMAIN,
  RCODE_SERVFAIL,
  type ResourceRecord,
  TYPE_A,
  TYPE_ANY,
  TYPE_OPT,
  TYPE_PTR,
} from './message.js';

export const RESOLVER_IP = '127.0.0.11';
export const DNS_PORT = 53;

/** Who is asking: read at every query, so the daemon may update `networks` in place. */
export interface Asker {
  networks: readonly string[];
  /** For logs and errors (container id or name). */
  id?: string;
}

/** The daemon's names: the IPv4 addresses `name` has for `asker`; empty when it has none. */
export type Lookup = (asker: Asker, name: string) => readonly string[] | Promise<readonly string[]>;

/** The daemon's reverse names: the names an IPv4 address has for `asker` (PTR); empty when none. */
export type ReverseLookup = (asker: Asker, ipv4: string) => readonly string[] | Promise<readonly string[]>;

export interface ResolverOptions {
  lookup: Lookup;
  /** Answers PTR queries (`D.C.B.A.in-addr.arpa`) for container addresses; others are forwarded. */
  reverse?: ReverseLookup;
  /** Upstream resolvers, `IP` or `IP:PORT` (IPv4); default: the nameservers in /etc/resolv.conf. */
  upstreams?: string[];
  /** Per upstream attempt (default 2000 ms). */
  forwardTimeoutMs?: number;
  /** TTL of answers for container names (default 600 s, as Docker). */
  ttl?: number;
  /** Forward unknown single-label names too (default false: NXDOMAIN). */
  forwardSingleLabel?: boolean;
  /** Where `ip netns exec` finds per-namespace /etc files (default /etc/netns). */
  etcNetnsDir?: string;
  /** Where named namespaces are mounted (default /run/netns). */
  netnsRunDir?: string;
  /** Bind through the warm binder (default true); false: a helper per namespace. */
  binder?: boolean;
}

export interface AttachOptions {
  netns: string;
  asker: Asker;
  /** Upstreams for this container; default the resolver's. */
  upstreams?: string[];
  /** Write /etc/netns/NS/resolv.conf (default true). */
  resolvConf?: boolean;
}

export interface Attachment {
  readonly netns: string;
  asker: Asker;
  detach(): Promise<void>;
}

/** Sockets to serve on: the query socket, optional TCP listener, optional forwarding socket. */
export interface ServeSockets {
  udp: dgram.Socket;
  tcp?: net.Server;
  forward?: dgram.Socket;
}

interface Upstream {
  address: string;
  port: number;
  /** Reached from the daemon's namespace (loopback) rather than the container's. */
  fromHost: boolean;
}

interface Pending {
  question: { name: string; type: number; class: number };
  query: Buffer;
  upstreams: Upstream[];
  index: number;
  /** The container-side forwarding socket (absent when only loopback upstreams are used). */
  socket: dgram.Socket | undefined;
  clientId: number;
  timer?: NodeJS.Timeout;
  reply: (answer: Buffer) => void;
}

const MAX_PENDING = 1024;
const TCP_IDLE_MS = 10000;

/** Reads the nameservers of a resolv.conf (IPv4 only; 127.0.0.11 itself is skipped). */
export function resolvConfUpstreams(path = '/etc/resolv.conf'): string[] {
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(line);
    if (m && m[1] !== RESOLVER_IP) out.push(m[1]!);
  }
  return out;
}

function parseUpstream(s: string): Upstream {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})(?::(\d{1,5}))?$/.exec(String(s));
  const port = m?.[2] === undefined ? DNS_PORT : Number(m[2]);
  if (!m || net.isIPv4(m[1]!) === false || port < 1 || port > 65535)
    throw new VxError('ERR_INVALID_ARG', `upstream resolver "${s}" must be IPv4[:port]`);
  return { address: m[1]!, port, fromHost: m[1]!.startsWith('127.') };
}

/** `4.3.2.1.in-addr.arpa` -> `1.2.3.4`; undefined for anything else. */
function arpaToIpv4(name: string): string | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.in-addr\.arpa$/.exec(name);
  if (!m || m.slice(1).some((b) => Number(b) > 255 || (b.length > 1 && b.startsWith('0')))) return undefined;
  return `${m[4]}.${m[3]}.${m[2]}.${m[1]}`;
}

function normalize(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

export class DnsResolver {
  private readonly lookup: Lookup;
  private readonly reverse: ReverseLookup | undefined;
  private readonly upstreams: Upstream[];
  private readonly timeoutMs: number;
  private readonly ttl: number;
  private readonly forwardSingleLabel: boolean;
  private readonly etcNetnsDir: string;
  private readonly netnsRunDir: string;
  private readonly pending = new Map<number, Pending>();
  private readonly attachments = new Map<
    string,
    { serving: Serving; attachment: Attachment; resolvConf: boolean }
  >();
  private hostSocket: dgram.Socket | undefined;
  private readonly binder = new Binder();
  private readonly useBinder: boolean;
  /** How attachments were bound: by the warm binder, or by a helper of their own. */
  readonly bound = { binder: 0, helper: 0 };
  private closed = false;

  constructor(options: ResolverOptions) {
    if (typeof options?.lookup !== 'function')
      throw new VxError('ERR_INVALID_ARG', 'options.lookup must be a function (asker, name) => ipv4[]');
    this.lookup = options.lookup;
    this.reverse = options.reverse;
    this.upstreams = (options.upstreams ?? resolvConfUpstreams()).map(parseUpstream);
    this.timeoutMs = options.forwardTimeoutMs ?? 2000;
    if (!Number.isInteger(this.timeoutMs) || this.timeoutMs < 1)
      throw new VxError('ERR_INVALID_ARG', 'options.forwardTimeoutMs must be a positive integer');
    this.ttl = options.ttl ?? 600;
    if (!Number.isInteger(this.ttl) || this.ttl < 0)
      throw new VxError('ERR_INVALID_ARG', 'options.ttl must be a non-negative integer');
    this.forwardSingleLabel = options.forwardSingleLabel ?? false;
    this.etcNetnsDir = options.etcNetnsDir ?? '/etc/netns';
    this.netnsRunDir = options.netnsRunDir ?? '/run/netns';
    this.useBinder = options.binder ?? true;
  }

  /** Serves on sockets the caller has (any namespace); returns a handle that closes them. */
  serve(sockets: ServeSockets, asker: Asker, options: { upstreams?: string[] } = {}): Serving {
    if (this.closed) throw new VxError('ERR_DNS_CLOSED', 'the resolver is closed');
    const upstreams = options.upstreams ? options.upstreams.map(parseUpstream) : this.upstreams;
    return new Serving(this, sockets, asker, upstreams);
  }

  /** Starts answering at 127.0.0.11:53 inside `netns` for `asker`; idempotent per namespace. */
  async attachResolver(options: AttachOptions): Promise<Attachment> {
    if (this.closed) throw new VxError('ERR_DNS_CLOSED', 'the resolver is closed');
    const ns = checkNetnsName(options?.netns);
    const known = this.attachments.get(ns);
    if (known) {
      known.attachment.asker = options.asker;
      return known.attachment;
    }
    const path = `${this.netnsRunDir}/${ns}`;
    const sockets = await this.bindIn(path);
    const serving = this.serve(sockets, options.asker, { upstreams: options.upstreams });
    const resolvConf = options.resolvConf ?? true;
    if (resolvConf) {
      mkdirSync(`${this.etcNetnsDir}/${ns}`, { recursive: true });
      writeFileSync(`${this.etcNetnsDir}/${ns}/resolv.conf`, `nameserver ${RESOLVER_IP}\noptions ndots:0\n`);
    }
    const attachment: Attachment = {
      netns: ns,
      get asker() {
        return serving.asker;
      },
      set asker(a: Asker) {
        serving.asker = a;
      },
      detach: () => this.detach(ns),
    };
    this.attachments.set(ns, { serving, attachment, resolvConf });
    return attachment;
  }

  /** Stops answering in `netns` and removes its resolv.conf. Can run twice. */
  async detach(netns: string): Promise<void> {
    const a = this.attachments.get(netns);
    if (!a) return;
    this.attachments.delete(netns);
    a.serving.close();
    if (a.resolvConf) {
      rmSync(`${this.etcNetnsDir}/${netns}/resolv.conf`, { force: true });
      try {
        rmdirSync(`${this.etcNetnsDir}/${netns}`);
      } catch {
        // Not empty (someone else's files) or already gone.
      }
    }
  }

  /** Starts the warm binder now, so the first attach does not wait for it. */
  prepare(): void {
    if (!this.closed && this.useBinder) void this.binder.start();
  }

  /** Sockets bound inside the namespace at `path`: by the warm binder, else a helper of its own. */
  private async bindIn(path: string): Promise<Required<ServeSockets>> {
    if (!existsSync(path))
      throw new VxError(
        'ERR_DNS_ATTACH',
        `could not bind ${RESOLVER_IP}:${DNS_PORT} in ${path}: no such namespace`,
      );
    try {
      const s = this.useBinder ? await this.binder.bind(path) : undefined;
      if (s) {
        this.bound.binder++;
        return s;
      }
    } catch {
      // The binder failed this one (e.g. setns refused): the helper reports the real reason.
    }
    const s = await bindInNetns(path);
    this.bound.helper++;
    return s;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.binder.close();
    for (const ns of [...this.attachments.keys()]) await this.detach(ns);
    this.closed = true;
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    this.hostSocket?.close();
  }

  // ---- answering (used by Serving) -----------------------------------------------------------

  /** The answer to one query datagram, or undefined to drop it; forwarded answers come via `reply`. */
  async answer(
    raw: Buffer,
    ctx: { asker: Asker; upstreams: Upstream[]; forward?: dgram.Socket; maxBytes: (q: Message) => number },
    reply: (answer: Buffer) => void,
  ): Promise<void> {
    const head = peekHeader(raw);
    if (!head || head.qr) return; // Too short to answer, or a response: drop.
    let q: Message;
    try {
      q = parseMessage(raw);
    } catch {
      reply(buildMessage({ id: head.id, qr: true, opcode: head.opcode, rcode: RCODE_FORMERR }));
      return;
    }
    const base = { id: q.id, qr: true, opcode: q.opcode, rd: q.rd, ra: true, questions: q.questions };
    const opt = q.additionals.find((r) => r.type === TYPE_OPT);
    // Answer EDNS0 with EDNS0 (RFC 6891 7), offering the same payload size back.
    const additionals: ResourceRecord[] = opt
      ? [
          {
            name: '',
            type: TYPE_OPT,
            class: Math.max(CLASSIC_UDP_BYTES, opt.class),
            ttl: 0,
            data: new Uint8Array(),
          },
        ]
      : [];
    if (q.opcode !== 0) return reply(buildMessage({ ...base, rcode: RCODE_NOTIMP }));
    if (q.questions.length !== 1) return reply(buildMessage({ ...base, rcode: RCODE_FORMERR }));
    const question = q.questions[0]!;
    const name = normalize(question.name);
    let answers: ResourceRecord[] | undefined;
    try {
      answers = await this.local(ctx.asker, question, name);
    } catch {
      // The daemon's lookup failed or returned something that is not an address.
      return reply(buildMessage({ ...base, rcode: RCODE_SERVFAIL, additionals }));
    }
    if (answers) {
      return reply(buildMessage({ ...base, aa: true, answers, additionals }, { maxBytes: ctx.maxBytes(q) }));
    }
    if ((!name.includes('.') && !this.forwardSingleLabel) || name === '') {
      return reply(buildMessage({ ...base, aa: true, rcode: RCODE_NXDOMAIN, additionals }));
    }
    const upstreams = ctx.upstreams.filter((u) => u.fromHost || ctx.forward);
    if (upstreams.length === 0 || this.pending.size >= MAX_PENDING) {
      return reply(buildMessage({ ...base, rcode: RCODE_SERVFAIL, additionals }));
    }
    this.forward({
      question: { name, type: question.type, class: question.class },
      query: Buffer.from(raw),
      upstreams,
      index: 0,
      socket: ctx.forward,
      clientId: raw.readUInt16BE(0),
      reply,
    });
  }

  /** The daemon's own answer to a question (records, maybe none), or undefined when it is not ours. */
  private async local(asker: Asker, question: Question, name: string): Promise<ResourceRecord[] | undefined> {
    if (question.class !== CLASS_IN || name === '') return undefined;
    const record = (type: number, data: Uint8Array) => ({
      name: question.name,
      type,
      class: CLASS_IN,
      ttl: this.ttl,
      data,
    });
    const ptrOf =
      this.reverse && (question.type === TYPE_PTR || question.type === TYPE_ANY)
        ? arpaToIpv4(name)
        : undefined;
    if (ptrOf) {
      const names = await this.reverse!(asker, ptrOf);
      if (names.length > 0) return names.map((n) => record(TYPE_PTR, encodeName(n)));
    }
    const ips = await this.lookup(asker, name);
    if (ips.length === 0) return undefined;
    return question.type === TYPE_A || question.type === TYPE_ANY
      ? ips.map((ip) => record(TYPE_A, ipv4Data(ip)))
      : [];
  }

  private forward(p: Pending): void {
    let id: number;
    do id = randomInt(0, 65536);
    while (this.pending.has(id));
    const clientId = p.clientId;
    this.pending.set(id, p);
    p.query.writeUInt16BE(id, 0);
    const fail = () => {
      this.pending.delete(id);
      p.query.writeUInt16BE(clientId, 0);
      const head = parseMessage(p.query);
      p.reply(
        buildMessage({
          id: clientId,
          qr: true,
          rd: head.rd,
          ra: true,
          questions: head.questions,
          rcode: RCODE_SERVFAIL,
        }),
      );
    };
    const attempt = () => {
      const up = p.upstreams[p.index]!;
      const socket = up.fromHost ? this.host() : p.socket!;
      socket.send(p.query, up.port, up.address, (err) => {
        if (err) next();
      });
      clearTimeout(p.timer);
      p.timer = setTimeout(next, this.timeoutMs);
    };
    const next = () => {
      if (this.pending.get(id) !== p) return;
      p.index++;
      if (p.index < p.upstreams.length) attempt();
      else fail();
    };
    attempt();
  }

  /** An answer arrived on a forwarding socket: hand it to the client that asked, if it is one. */
  upstreamAnswer(msg: Buffer, from: dgram.RemoteInfo): void {
    const head = peekHeader(msg);
    if (!head?.qr) return;
    const p = this.pending.get(head.id);
    if (!p) return;
    const up = p.upstreams[p.index]!;
    if (from.address !== up.address || from.port !== up.port) return;
    let m: Message;
    try {
      m = parseMessage(msg);
    } catch {
      return; // A garbled answer: wait for a good one or the timeout.
    }
    const q = m.questions[0];
    if (
      m.questions.length !== 1 ||
      normalize(q!.name) !== p.question.name ||
      q!.type !== p.question.type ||
      q!.class !== p.question.class
    )
      return;
    clearTimeout(p.timer);
    this.pending.delete(head.id);
    const out = Buffer.from(msg);
    out.writeUInt16BE(p.clientId, 0);
    p.reply(out);
  }

  private host(): dgram.Socket {
    if (!this.hostSocket) {
      this.hostSocket = dgram.createSocket('udp4');
      this.hostSocket.on('message', (m, r) => this.upstreamAnswer(m, r));
      this.hostSocket.on('error', () => undefined);
      this.hostSocket.unref();
    }
    return this.hostSocket;
  }
}

/** One set of sockets being served for one asker. */
export class Serving {
  private readonly conns = new Set<net.Socket>();
  constructor(
    private readonly resolver: DnsResolver,
    private readonly sockets: ServeSockets,
    public asker: Asker,
    private readonly upstreams: Upstream[],
  ) {
    const { udp, tcp, forward } = sockets;
    const maxUdp = (q: Message) => {
      const opt = q.additionals.find((r) => r.type === TYPE_OPT);
      return opt ? Math.min(Math.max(opt.class, CLASSIC_UDP_BYTES), 4096) : CLASSIC_UDP_BYTES;
    };
    udp.on('message', (msg, rinfo) => {
      const ctx = { asker: this.asker, upstreams: this.upstreams, forward, maxBytes: maxUdp };
      void this.resolver
        .answer(msg, ctx, (a) => udp.send(a, rinfo.port, rinfo.address, () => undefined))
        .catch(() => undefined);
    });
    udp.on('error', () => undefined);
    forward?.on('message', (m, r) => this.resolver.upstreamAnswer(m, r));
    forward?.on('error', () => undefined);
    tcp?.on('connection', (c) => this.tcpConnection(c));
    tcp?.on('error', () => undefined);
  }

  /** TCP: 2-byte length-prefixed queries (RFC 1035 4.2.2), several per connection. */
  private tcpConnection(c: net.Socket): void {
    this.conns.add(c);
    c.setTimeout(TCP_IDLE_MS, () => c.destroy());
    c.on('close', () => this.conns.delete(c));
    c.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        const ctx = {
          asker: this.asker,
          upstreams: this.upstreams,
          forward: this.sockets.forward,
          maxBytes: () => 65535,
        };
        void this.resolver
          .answer(Buffer.from(msg), ctx, (a) => {
            if (c.destroyed) return;
            const len2 = Buffer.alloc(2);
            len2.writeUInt16BE(a.length);
            c.write(Buffer.concat([len2, a]));
          })
          .catch(() => undefined);
      }
    });
    c.resume();
  }

  close(): void {
    const { udp, tcp, forward } = this.sockets;
    for (const s of [udp, forward]) {
      try {
        s?.close();
      } catch {
        // Already closed.
      }
    }
    tcp?.close();
    for (const c of this.conns) c.destroy();
  }
}

export function createResolver(options: ResolverOptions): DnsResolver {
  return new DnsResolver(options);
}

// ---- binding inside a namespace ---------------------------------------------------------------------

// Runs inside the target namespace under nsenter: binds, hands the sockets over IPC, exits.
const HELPER = `
const dgram = require('node:dgram'), net = require('node:net');
const addr = ${JSON.stringify(RESOLVER_IP)}, port = ${DNS_PORT};
const fail = (e) => { process.send({ kind: 'error', message: String(e && e.message || e) }, () => process.exit(1)); };
const udp = dgram.createSocket('udp4');
udp.on('error', fail);
udp.bind({ address: addr, port }, () => {
  const fwd = dgram.createSocket('udp4');
  fwd.on('error', fail);
  fwd.bind({ port: 0 }, () => {
    const tcp = net.createServer({ pauseOnConnect: true });
    tcp.on('error', fail);
    tcp.listen({ host: addr, port }, () => {
      process.send({ kind: 'udp' }, udp, () =>
        process.send({ kind: 'forward' }, fwd, () =>
          process.send({ kind: 'tcp' }, tcp, () => process.exit(0))));
    });
  });
});
`;

/** Binds the resolver's sockets inside the namespace mounted at `nsPath`. */
async function bindInNetns(nsPath: string): Promise<Required<ServeSockets>> {
  const child: ChildProcess = spawn('nsenter', [`--net=${nsPath}`, process.execPath, '-e', HELPER], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  const got: Partial<Required<ServeSockets>> = {};
  try {
    return await new Promise<Required<ServeSockets>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no sockets after 10 s')), 10000);
      child.on('message', (m: { kind: string; message?: string }, handle: unknown) => {
        if (m.kind === 'error') reject(new Error(m.message));
        else if (m.kind === 'udp') got.udp = handle as dgram.Socket;
        else if (m.kind === 'forward') got.forward = handle as dgram.Socket;
        else if (m.kind === 'tcp') got.tcp = handle as net.Server;
        if (got.udp && got.forward && got.tcp) {
          clearTimeout(timer);
          resolve(got as Required<ServeSockets>);
        }
      });
      child.on('error', (e) => reject(e));
      child.on('exit', (code) => {
        // Messages are delivered before 'exit'; give the last one a turn before deciding.
        setImmediate(() => {
          if (!(got.udp && got.forward && got.tcp))
            reject(new Error(`helper exited (${code}): ${stderr.trim()}`));
        });
      });
    });
  } catch (e) {
    got.udp?.close();
    got.forward?.close();
    got.tcp?.close();
    if (child.exitCode === null) child.kill('SIGKILL');
    throw new VxError(
      'ERR_DNS_ATTACH',
      `could not bind ${RESOLVER_IP}:${DNS_PORT} in ${nsPath}: ${(e as Error).message}`,
    );
  }
}

// ---- the warm binder ----------------------------------------------------------------------------
//
// Starting a helper per namespace costs a Node start-up (~50-150 ms) on every container start.
// The binder is one helper kept running: for each request it enters the namespace with setns(2)
// (through koffi; only this helper's main thread moves, and it does nothing else meanwhile),
// binds the three sockets, returns to its own namespace, hands them over and closes its copies.
// If it cannot run (no koffi, setns refused), attaching falls back to the per-namespace helper.

const BINDER = `
const koffi = require(process.argv[1]);
const setns = koffi.load('libc.so.6').func('int setns(int fd, int nstype)');
const fs = require('node:fs'), dgram = require('node:dgram'), net = require('node:net');
const CLONE_NEWNET = 0x40000000;
const addr = ${JSON.stringify(RESOLVER_IP)}, port = ${DNS_PORT};
const home = fs.openSync('/proc/self/ns/net', 'r');
const enter = (fd, what) => { if (setns(fd, CLONE_NEWNET) !== 0) throw new Error('setns into ' + what + ' failed'); };
const send = (msg, handle) => new Promise((resolve, reject) => process.send(msg, handle, (e) => (e ? reject(e) : resolve())));
const listen = (make, start) => new Promise((resolve, reject) => { const s = make(); s.once('error', reject); start(s, () => resolve(s)); });
async function serve(m) {
  const made = [];
  let away = false;
  try {
    const fd = fs.openSync(m.path, 'r');
    try { enter(fd, m.path); away = true; } finally { fs.closeSync(fd); }
    made.push(await listen(() => dgram.createSocket('udp4'), (s, cb) => s.bind({ address: addr, port }, cb)));
    made.push(await listen(() => dgram.createSocket('udp4'), (s, cb) => s.bind({ port: 0 }, cb)));
    made.push(await listen(() => net.createServer({ pauseOnConnect: true }), (s, cb) => s.listen({ host: addr, port }, cb)));
    enter(home, 'home'); away = false;
    await send({ id: m.id, kind: 'udp' }, made[0]);
    await send({ id: m.id, kind: 'forward' }, made[1]);
    await send({ id: m.id, kind: 'tcp' }, made[2]);
  } catch (e) {
    if (away) enter(home, 'home');
    process.send({ id: m.id, kind: 'error', message: String((e && e.message) || e) });
  } finally {
    for (const s of made) s.close();
  }
}
let chain = Promise.resolve();
process.on('message', (m) => { chain = chain.then(() => serve(m)); });
process.on('disconnect', () => process.exit(0));
process.send({ kind: 'ready' });
`;

interface BindRequest {
  got: Partial<Required<ServeSockets>>;
  resolve: (s: Required<ServeSockets>) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

class Binder {
  private child?: ChildProcess;
  private ready?: Promise<boolean>;
  private readonly pending = new Map<number, BindRequest>();
  private next = 1;

  /** The sockets bound inside `nsPath`; undefined when the binder cannot run (use the fallback). */
  async bind(nsPath: string): Promise<Required<ServeSockets> | undefined> {
    if (!(await this.start())) return undefined;
    const child = this.child!;
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(id, new Error('no sockets after 10 s')), 10000);
      this.pending.set(id, { got: {}, resolve, reject, timer });
      child.channel?.ref();
      child.send({ id, path: nsPath });
    });
  }

  close(): void {
    for (const id of [...this.pending.keys()]) this.fail(id, new Error('the resolver is closing'));
    this.child?.kill('SIGKILL');
    this.child = undefined;
    this.ready = undefined;
  }

  start(): Promise<boolean> {
    this.ready ??= new Promise<boolean>((resolve) => {
      let koffi: string;
      try {
        koffi = createRequire(import.meta.url).resolve('koffi');
      } catch {
        resolve(false);
        return;
      }
      const child = spawn(process.execPath, ['-e', BINDER, koffi], {
        stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      });
      this.child = child;
      child.unref();
      child.on('message', (m: { id?: number; kind: string; message?: string }, handle: unknown) => {
        if (m.kind === 'ready') return resolve(true);
        this.onMessage(m, handle);
      });
      child.once('error', () => resolve(false));
      child.once('exit', () => {
        resolve(false);
        if (this.child === child) {
          this.child = undefined;
          this.ready = undefined;
        }
        for (const id of [...this.pending.keys()]) this.fail(id, new Error('the binder exited'));
      });
    });
    return this.ready;
  }

  private onMessage(m: { id?: number; kind: string; message?: string }, handle: unknown): void {
    const req = m.id === undefined ? undefined : this.pending.get(m.id);
    if (!req) {
      (handle as { close?: () => void } | undefined)?.close?.();
      return;
    }
    if (m.kind === 'error') {
      this.fail(m.id!, new Error(m.message));
      return;
    }
    if (m.kind === 'udp') req.got.udp = handle as dgram.Socket;
    else if (m.kind === 'forward') req.got.forward = handle as dgram.Socket;
    else if (m.kind === 'tcp') req.got.tcp = handle as net.Server;
    const { udp, forward, tcp } = req.got;
    if (udp && forward && tcp) {
      this.settle(m.id!);
      req.resolve({ udp, forward, tcp });
    }
  }

  private fail(id: number, e: Error): void {
    const req = this.pending.get(id);
    if (!req) return;
    this.settle(id);
    req.got.udp?.close();
    req.got.forward?.close();
    req.got.tcp?.close();
    req.reject(e);
  }

  private settle(id: number): void {
    clearTimeout(this.pending.get(id)?.timer);
    this.pending.delete(id);
    if (this.pending.size === 0) this.child?.channel?.unref();
  }
}
