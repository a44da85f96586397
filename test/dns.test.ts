// The embedded DNS resolver. Messages: known bytes, scapy (an implementation not written here)
// both ways, and random/truncated/mutated input that must be rejected with ERR_DNS_MALFORMED and
// nothing else. Serving: real namespaces made here - two containers on different networks, and an
// upstream resolver (a small Python server) in its own namespace reached by a veth from one
// container - queried with glibc's resolver (`getent` under `ip netns exec`) and a Python client.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  buildMessage,
  CLASS_IN,
  encodeName,
  ipv4Data,
  parseMessage,
  RCODE_NXDOMAIN,
  TYPE_A,
  TYPE_OPT,
} from '../src/dns/message.js';
import { type Asker, createResolver } from '../src/dns/server.js';
import { isVxError } from '../src/errors.js';
import { ip } from '../src/kernel/exec.js';
import { deleteNetns, ensureNetns } from '../src/kernel/netns.js';

const PY = '/usr/bin/python3';

function sh(
  cmd: string,
  args: string[],
  input?: string,
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const c = execFile(cmd, args, { timeout: 15000 }, (e, out, err) =>
      resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out, err }),
    );
    if (input !== undefined) c.stdin!.end(input);
  });
}

// ---- messages -----------------------------------------------------------------------------------

const QUERY_WEB = Buffer.from('123401000001000000000000037765620000010001', 'hex');

test('a query parses from known bytes and builds back to them', () => {
  const m = parseMessage(QUERY_WEB);
  assert.equal(m.id, 0x1234);
  assert.equal(m.rd, true);
  assert.equal(m.qr, false);
  assert.deepEqual(m.questions, [{ name: 'web', type: TYPE_A, class: CLASS_IN }]);
  assert.deepEqual(buildMessage(m), QUERY_WEB);
});

test('an answer builds to known bytes, with the name compressed to the question', () => {
  const a = buildMessage({
    id: 7,
    qr: true,
    rd: true,
    ra: true,
    questions: [{ name: 'web', type: TYPE_A, class: CLASS_IN }],
    answers: ['10.0.0.2', '10.0.0.3'].map((ip) => ({
      name: 'web',
      type: TYPE_A,
      class: CLASS_IN,
      ttl: 600,
      data: ipv4Data(ip),
    })),
  });
  assert.equal(
    a.toString('hex'),
    '000781800001000200000000037765620000010001' +
      'c00c000100010000025800040a000002' +
      'c00c000100010000025800040a000003',
  );
});

test('scapy both ways: its EDNS0 query parses here; an answer built here parses in scapy', async () => {
  const mine = buildMessage({
    id: 0xbeef,
    qr: true,
    aa: true,
    rcode: RCODE_NXDOMAIN,
    questions: [{ name: 'nope.example', type: TYPE_A, class: CLASS_IN }],
    answers: [{ name: 'db', type: TYPE_A, class: CLASS_IN, ttl: 30, data: ipv4Data('192.0.2.1') }],
  });
  const script = [
    'import sys',
    'from scapy.layers.dns import DNS, DNSQR, DNSRROPT',
    "q = DNS(id=0x4242, rd=1, qd=DNSQR(qname='Example.TEST', qtype='A'), ar=DNSRROPT(rclass=1232))",
    'print(bytes(q).hex())',
    'r = DNS(bytes.fromhex(sys.argv[1]))',
    'print(r.id, r.qr, r.aa, r.rcode, r.qd.qname.decode(), r.qd.qtype)',
    'a = r.an[0]',
    'print(a.rrname.decode(), a.type, a.ttl, a.rdata)',
  ].join('\n');
  const r = await sh(PY, ['-c', script, mine.toString('hex')]);
  assert.equal(r.code, 0, r.err);
  const [qhex, head, ans] = r.out.trim().split('\n');
  const q = parseMessage(Buffer.from(qhex!, 'hex'));
  assert.equal(q.id, 0x4242);
  assert.deepEqual(q.questions, [{ name: 'Example.TEST', type: TYPE_A, class: CLASS_IN }]);
  assert.equal(q.additionals[0]?.type, TYPE_OPT);
  assert.equal(q.additionals[0]?.class, 1232, 'the OPT record carries the UDP size');
  assert.equal(head, `${0xbeef} 1 1 3 nope.example. 1`);
  assert.equal(ans, 'db. 1 30 192.0.2.1');
});

test('names: escapes round-trip; bad names are ERR_DNS_BAD_NAME', () => {
  for (const name of ['a\\046b.c', 'x\\000y', 'UPPER.lower', '*.wild', '']) {
    const q = buildMessage({ id: 1, questions: [{ name, type: TYPE_A, class: CLASS_IN }] });
    assert.equal(parseMessage(q).questions[0]!.name, name);
  }
  assert.deepEqual(encodeName('a\\.b.c'), encodeName('a\\046b.c'), 'a backslash escapes the next character');
  assert.deepEqual(encodeName('web.'), encodeName('web'), 'a trailing dot is the root');
  for (const bad of ['a..b', 'x'.repeat(64), `${'abc.'.repeat(64)}x`, 'é.fr', 'trailing\\']) {
    assert.throws(
      () => encodeName(bad),
      (e) => isVxError(e, 'ERR_DNS_BAD_NAME'),
      bad,
    );
  }
});

test('hostile input: truncations, mutations, random bytes and pointer loops are ERR_DNS_MALFORMED only', () => {
  let seed = 12345;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed >>> 16;
  };
  const samples = [
    QUERY_WEB,
    buildMessage({
      id: 9,
      qr: true,
      questions: [{ name: 'a.b.example', type: TYPE_A, class: CLASS_IN }],
      answers: [{ name: 'a.b.example', type: TYPE_A, class: CLASS_IN, ttl: 5, data: ipv4Data('1.2.3.4') }],
      additionals: [{ name: '', type: TYPE_OPT, class: 1232, ttl: 0, data: new Uint8Array() }],
    }),
  ];
  const check = (b: Uint8Array) => {
    try {
      parseMessage(b);
    } catch (e) {
      assert.ok(isVxError(e, 'ERR_DNS_MALFORMED'), `unexpected ${String(e)}`);
    }
  };
  for (const s of samples) {
    for (let n = 0; n < s.length; n++) {
      assert.throws(
        () => parseMessage(s.subarray(0, n)),
        (e) => isVxError(e, 'ERR_DNS_MALFORMED'),
      );
    }
    for (let i = 0; i < 3000; i++) {
      const b = Buffer.from(s);
      for (let k = 0; k < 1 + (rnd() % 4); k++) b[rnd() % b.length] = rnd() & 0xff;
      check(b);
    }
  }
  for (let i = 0; i < 3000; i++) check(randomBytes(rnd() % 80));
  // A pointer to itself, and two pointers to each other.
  const loop1 = Buffer.from('0001000000010000000000000c0c00010001'.replace('0c0c', 'c00c'), 'hex');
  const loop2 = Buffer.from('000100000001000000000000c00ec00c00010001', 'hex');
  for (const b of [loop1, loop2])
    assert.throws(
      () => parseMessage(b),
      (e) => isVxError(e, 'ERR_DNS_MALFORMED'),
    );
});

// ---- serving inside namespaces ------------------------------------------------------------------

// The upstream: answers outside.test A 192.0.2.7, NXDOMAIN otherwise; logs every name it is asked.
const UPSTREAM = `
import socket, struct, sys
log = open(sys.argv[2], 'a', buffering=1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
print('ready', flush=True)
while True:
    q, peer = s.recvfrom(4096)
    i, labels = 12, []
    while q[i]:
        labels.append(q[i+1:i+1+q[i]].decode()); i += 1 + q[i]
    name = '.'.join(labels).lower(); qend = i + 5
    log.write(name + '\\n')
    qid, flags = struct.unpack('>HH', q[:4])
    if name == 'outside.test' and q[i+1:i+3] == b'\\x00\\x01':
        body = struct.pack('>HHHHHH', qid, 0x8180 | (flags & 0x100), 1, 1, 0, 0) + q[12:qend]
        body += b'\\xc0\\x0c' + struct.pack('>HHIH', 1, 1, 60, 4) + bytes([192, 0, 2, 7])
    else:
        rcode = 0 if name == 'outside.test' else 3
        body = struct.pack('>HHHHHH', qid, 0x8180 | rcode, 1, 0, 0, 0) + q[12:qend]
    s.sendto(body, peer)
`;

// A resolver client in Python: one query to 127.0.0.11 over UDP or TCP; prints JSON.
const CLIENT = `
import socket, struct, sys, json
name, qtype, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
raw = sys.argv[4] if len(sys.argv) > 4 else None
q = bytes.fromhex(raw) if raw else struct.pack('>HHHHHH', 0xbeef, 0x0100, 1, 0, 0, 0) + b''.join(
    bytes([len(l)]) + l.encode() for l in name.split('.')) + b'\\0' + struct.pack('>HH', qtype, 1)
if proto == 'udp':
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(4)
    s.sendto(q, ('127.0.0.11', 53)); r = s.recv(65535)
else:
    s = socket.create_connection(('127.0.0.11', 53), timeout=4)
    s.sendall(struct.pack('>H', len(q)) + q)
    n = struct.unpack('>H', s.recv(2))[0]; r = b''
    while len(r) < n: r += s.recv(n - len(r))
qid, flags, qd, an = struct.unpack('>HHHH', r[:8])
i = 12
for _ in range(qd):
    while r[i] and r[i] < 0xc0: i += 1 + r[i]
    i += (2 if r[i] >= 0xc0 else 1) + 4
ips = []
for _ in range(an):
    while r[i] and r[i] < 0xc0: i += 1 + r[i]
    i += 2 if r[i] >= 0xc0 else 1
    t, c, ttl, ln = struct.unpack('>HHIH', r[i:i+10]); i += 10
    if t == 1: ips.append('.'.join(str(b) for b in r[i:i+4]))
    if t == 12:
        j, labels = i, []
        while r[j]: labels.append(r[j+1:j+1+r[j]].decode()); j += 1 + r[j]
        ips.append('.'.join(labels))
    i += ln
print(json.dumps({'id': qid, 'rcode': flags & 15, 'aa': bool(flags & 0x400), 'tc': bool(flags & 0x200), 'ips': ips}))
`;

interface Answer {
  id: number;
  rcode: number;
  aa: boolean;
  tc: boolean;
  ips: string[];
}

async function ask(
  ns: string,
  name: string,
  options: { type?: number; proto?: 'udp' | 'tcp'; raw?: string } = {},
) {
  const args = [
    'netns',
    'exec',
    ns,
    PY,
    '-c',
    CLIENT,
    name,
    String(options.type ?? TYPE_A),
    options.proto ?? 'udp',
  ];
  if (options.raw) args.push(options.raw);
  const r = await sh('ip', args);
  assert.equal(r.code, 0, `query ${name} in ${ns}: ${r.err}`);
  return JSON.parse(r.out) as Answer;
}

test('the resolver in container namespaces: names by network, NXDOMAIN, forwarding, timeouts', async (t) => {
  const sfx = randomBytes(3).toString('hex');
  const [c1, c2, up] = [`vxdns-c1-${sfx}`, `vxdns-c2-${sfx}`, `vxdns-up-${sfx}`];
  const tmp = mkdtempSync(join(tmpdir(), 'vxnet-dns-'));
  t.after(async () => {
    for (const ns of [c1, c2, up]) {
      await deleteNetns(ns, { killProcesses: true });
      rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    }
    rmSync(tmp, { recursive: true, force: true });
  });
  for (const ns of [c1, c2, up]) await ensureNetns(ns);
  // c1 (10.53.0.1) --veth-- up (10.53.0.2), where the upstream resolver listens.
  await ip(
    ['link', 'add', `d1${sfx}`, 'netns', c1, 'type', 'veth', 'peer', 'name', `d2${sfx}`, 'netns', up],
    {
      action: 'add veth',
    },
  );
  await ip(['addr', 'add', '10.53.0.1/24', 'dev', `d1${sfx}`], { netns: c1, action: 'addr' });
  await ip(['addr', 'add', '10.53.0.2/24', 'dev', `d2${sfx}`], { netns: up, action: 'addr' });
  await ip(['link', 'set', `d1${sfx}`, 'up'], { netns: c1, action: 'up' });
  await ip(['link', 'set', `d2${sfx}`, 'up'], { netns: up, action: 'up' });
  // glibc asks for IPv4 names only when an interface has an IPv4 address (AI_ADDRCONFIG).
  await ip(['link', 'add', 'eth0', 'netns', c2, 'type', 'veth', 'peer', 'name', `d3${sfx}`, 'netns', up], {
    action: 'add veth',
  });
  await ip(['addr', 'add', '10.0.1.9/24', 'dev', 'eth0'], { netns: c2, action: 'addr' });
  await ip(['link', 'set', 'eth0', 'up'], { netns: c2, action: 'up' });
  const log = join(tmp, 'upstream.log');
  const upstream = spawn('ip', ['netns', 'exec', up, PY, '-c', UPSTREAM, '10.53.0.2', log], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => upstream.kill('SIGKILL'));
  await new Promise((r) => upstream.stdout!.once('data', r));

  // The daemon's view: web (alias www) on red, db on blue.
  const table = [
    { names: ['web', 'www'], net: 'red', ip: '10.0.0.2' },
    { names: ['db'], net: 'blue', ip: '10.0.1.3' },
    { names: ['many'], net: 'red', ip: '' },
  ];
  const manyIps = Array.from({ length: 40 }, (_, i) => `10.0.2.${i + 1}`);
  const asked: string[] = [];
  const resolver = createResolver({
    upstreams: ['10.53.0.2'],
    forwardTimeoutMs: 500,
    lookup: (asker: Asker, name: string) => {
      asked.push(name);
      const hits = table.filter((e) => e.names.includes(name) && asker.networks.includes(e.net));
      return hits.flatMap((e) => (e.names[0] === 'many' ? manyIps : [e.ip]));
    },
    reverse: (asker: Asker, addr: string) =>
      table.filter((e) => e.ip === addr && asker.networks.includes(e.net)).map((e) => e.names[0]!),
  });
  t.after(() => resolver.close());
  await assert.rejects(
    resolver.attachResolver({ netns: `vxdns-none-${sfx}`, asker: { networks: [] } }),
    (e) => isVxError(e, 'ERR_DNS_ATTACH'),
  );
  const a1 = await resolver.attachResolver({ netns: c1, asker: { id: 'c1', networks: ['red'] } });
  // c2 has no route to any upstream: forwarding from it must time out into SERVFAIL.
  await resolver.attachResolver({
    netns: c2,
    asker: { id: 'c2', networks: ['blue'] },
    upstreams: ['10.53.0.2'],
  });
  assert.equal(
    readFileSync(`/etc/netns/${c1}/resolv.conf`, 'utf8'),
    'nameserver 127.0.0.11\noptions ndots:0\n',
  );

  // glibc's resolver, as a program in the container sees it.
  const getent = (ns: string, name: string) => sh('ip', ['netns', 'exec', ns, 'getent', 'ahostsv4', name]);
  const web = await getent(c1, 'web');
  assert.equal(web.code, 0, web.err);
  assert.match(web.out, /^10\.0\.0\.2\s/m);
  assert.match((await getent(c1, 'www')).out, /^10\.0\.0\.2\s/m, 'an alias resolves');
  assert.equal((await getent(c1, 'db')).code, 2, 'a container on another network does not resolve');
  assert.match((await getent(c2, 'db')).out, /^10\.0\.1\.3\s/m, 'but does for a container on its network');
  assert.equal((await getent(c2, 'web')).code, 2);
  assert.match((await getent(c1, 'outside.test')).out, /^192\.0\.2\.7\s/m, 'forwarded to the upstream');
  const rev = await sh('ip', ['netns', 'exec', c1, 'getent', 'hosts', '10.0.0.2']);
  assert.match(rev.out, /^10\.0\.0\.2\s+web$/m, 'reverse lookup (PTR) of a container address');
  assert.deepEqual((await ask(c1, '2.0.0.10.in-addr.arpa', { type: 12 })).ips, ['web']);
  assert.equal((await ask(c1, '3.1.0.10.in-addr.arpa', { type: 12 })).rcode, RCODE_NXDOMAIN, 'not for db');

  // Exact answers, over UDP and TCP.
  const w = await ask(c1, 'WEB');
  assert.deepEqual(w, { id: 0xbeef, rcode: 0, aa: true, tc: false, ips: ['10.0.0.2'] });
  assert.deepEqual((await ask(c1, 'web', { proto: 'tcp' })).ips, ['10.0.0.2']);
  assert.deepEqual(await ask(c1, 'web', { type: 28 }), {
    id: 0xbeef,
    rcode: 0,
    aa: true,
    tc: false,
    ips: [],
  });
  assert.equal((await ask(c1, 'nosuchname')).rcode, RCODE_NXDOMAIN, 'an unknown name is NXDOMAIN');
  assert.equal((await ask(c1, 'db')).rcode, RCODE_NXDOMAIN);
  assert.equal((await ask(c1, 'missing.test')).rcode, RCODE_NXDOMAIN, "the upstream's NXDOMAIN is relayed");
  assert.equal(
    (await ask(c1, 'outside.test', { proto: 'tcp' })).ips[0],
    '192.0.2.7',
    'TCP queries forward too',
  );
  const many = await ask(c1, 'many');
  assert.ok(many.tc && many.ips.length > 0 && many.ips.length < 40, 'a long answer is truncated over UDP');
  assert.equal((await ask(c1, 'many', { proto: 'tcp' })).ips.length, 40, 'and complete over TCP');
  const t0 = Date.now();
  assert.equal((await ask(c2, 'outside.test')).rcode, 2, 'an unreachable upstream gives SERVFAIL');
  assert.ok(Date.now() - t0 < 3000);

  // Garbage gets FORMERR (or nothing), and the resolver keeps answering.
  const bad = await ask(c1, '', { raw: 'abcd0100000100000000000003776562' });
  assert.deepEqual([bad.id, bad.rcode], [0xabcd, 1]);
  assert.deepEqual((await ask(c1, 'web')).ips, ['10.0.0.2']);

  const upstreamSaw = readFileSync(log, 'utf8').split('\n').filter(Boolean);
  assert.ok(upstreamSaw.includes('outside.test') && upstreamSaw.includes('missing.test'));
  for (const leaked of ['web', 'db', 'nosuchname', 'www'])
    assert.ok(!upstreamSaw.includes(leaked), `${leaked} was not sent upstream`);

  // The asker can change in place (the container joined blue).
  a1.asker = { id: 'c1', networks: ['red', 'blue'] };
  assert.deepEqual((await ask(c1, 'db')).ips, ['10.0.1.3']);

  await a1.detach();
  await a1.detach();
  assert.equal(existsSync(`/etc/netns/${c1}`), false, 'resolv.conf removed');
  const gone = await sh('ip', ['netns', 'exec', c1, PY, '-c', CLIENT, 'web', '1', 'udp']);
  assert.notEqual(gone.code, 0, 'nothing answers after detach');
});

test('serve() on loopback sockets: garbage never stops it; TCP queries split across writes', async (t) => {
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  const tcp = net.createServer();
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()));
  const resolver = createResolver({
    upstreams: [],
    lookup: (_a, name) => (name === 'web' ? ['10.0.0.2'] : []),
  });
  const serving = resolver.serve({ udp, tcp }, { networks: ['red'] });
  t.after(async () => {
    serving.close();
    await resolver.close();
  });
  const port = (udp.address() as net.AddressInfo).port;
  const client = dgram.createSocket('udp4');
  t.after(() => client.close());
  const replies: Buffer[] = [];
  client.on('message', (m) => replies.push(m));
  let seed = 99;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed >>> 16;
  };
  for (let i = 0; i < 300; i++) {
    const b = Buffer.from(QUERY_WEB);
    for (let k = 0; k < 1 + (rnd() % 6); k++) b[rnd() % b.length] = rnd() & 0xff;
    client.send(i % 3 === 0 ? randomBytes(rnd() % 40) : b, port, '127.0.0.1');
  }
  await new Promise((r) => setTimeout(r, 300));
  for (const r of replies) assert.ok(parseMessage(r).qr, 'every reply is a well-formed response');
  replies.length = 0;
  client.send(QUERY_WEB, port, '127.0.0.1');
  for (let i = 0; i < 50 && replies.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  const a = parseMessage(replies[0]!);
  assert.deepEqual([a.id, a.rcode, [...a.answers[0]!.data]], [0x1234, 0, [10, 0, 0, 2]]);

  // Two queries over one TCP connection, the first split mid-length-prefix.
  const conn = net.connect((tcp.address() as net.AddressInfo).port, '127.0.0.1');
  t.after(() => conn.destroy());
  const framed = Buffer.concat([Buffer.from([0, QUERY_WEB.length]), QUERY_WEB]);
  const got: Buffer[] = [];
  let acc = Buffer.alloc(0);
  conn.on('data', (d: Buffer) => {
    acc = Buffer.concat([acc, d]);
    while (acc.length >= 2 && acc.length >= 2 + acc.readUInt16BE(0)) {
      got.push(acc.subarray(2, 2 + acc.readUInt16BE(0)));
      acc = acc.subarray(2 + acc.readUInt16BE(0));
    }
  });
  conn.write(framed.subarray(0, 1));
  await new Promise((r) => setTimeout(r, 30));
  conn.write(Buffer.concat([framed.subarray(1), framed]));
  for (let i = 0; i < 50 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(got.length, 2);
  for (const g of got) assert.equal(parseMessage(g).answers.length, 1);
});

test('both ways of binding serve inside the right namespace: the warm binder and a helper per namespace', async (t) => {
  const sfx = randomBytes(3).toString('hex');
  const nss = [`vxdns-b1-${sfx}`, `vxdns-b2-${sfx}`, `vxdns-b3-${sfx}`];
  t.after(async () => {
    for (const ns of nss) {
      await deleteNetns(ns, { killProcesses: true });
      rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    }
  });
  for (const [i, ns] of nss.entries()) {
    await ensureNetns(ns);
    // glibc asks for IPv4 names only when an interface has an IPv4 address (AI_ADDRCONFIG).
    await ip(['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p'], {
      netns: ns,
      action: 'add veth',
    });
    await ip(['addr', 'add', `10.0.9.${i + 1}/24`, 'dev', 'eth0'], { netns: ns, action: 'addr' });
    await ip(['link', 'set', 'eth0', 'up'], { netns: ns, action: 'up' });
  }
  const lookup = (a: Asker, name: string) => (name === `who${a.id}` ? [`10.0.9.${a.id}`] : []);
  const warm = createResolver({ upstreams: [], lookup });
  const own = createResolver({ upstreams: [], lookup, binder: false });
  t.after(async () => {
    await warm.close();
    await own.close();
  });
  await warm.attachResolver({ netns: nss[0]!, asker: { id: '1', networks: [] } });
  await warm.attachResolver({ netns: nss[1]!, asker: { id: '2', networks: [] } });
  await own.attachResolver({ netns: nss[2]!, asker: { id: '3', networks: [] } });
  assert.deepEqual(warm.bound, { binder: 2, helper: 0 });
  assert.deepEqual(own.bound, { binder: 0, helper: 1 });
  for (const [i, ns] of nss.entries()) {
    const r = await sh('ip', ['netns', 'exec', ns, 'getent', 'ahostsv4', `who${i + 1}`]);
    assert.match(
      r.out,
      new RegExp(`^10\\.0\\.9\\.${i + 1}\\s`, 'm'),
      `${ns} is answered by its own attachment`,
    );
  }
});
