// VXLAN wire bytes checked against implementations not written here.
//
// (a) scapy (Debian python3-scapy): frames scapy builds (outer IPv4/UDP/VXLAN around TCP, UDP, ARP,
//     802.1Q, QinQ and IPv6 inner frames) parse in vxnet to the fields scapy put there, with valid
//     checksums; datagrams vxnet builds with outer.ts are dissected by scapy to the fields vxnet was
//     asked for, with checksums scapy recomputes to the same values.
// (b) the Linux kernel's `vxlan` device, in two fresh namespaces joined by a veth pair: what it sends
//     (an ICMP echo request, an ARP request) is captured with a UDP socket and, as whole underlay
//     frames, with an AF_PACKET socket; vxnet parses both (VNI, inner fields) and verifies the
//     kernel's outer IPv4 and UDP checksums; and
//     echo requests vxnet encapsulates (outer bytes from outer.ts, sent unmodified through an
//     AF_PACKET socket) are accepted by the kernel, which answers through the tunnel; a datagram
//     with a broken UDP checksum or bad VXLAN flags gets no answer.
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import * as C from '../assembly/constants.js';
import { type OuterOptions, PacketCore, type ParsedFrame } from '../src/wasm/packet.js';

const PY = '/usr/bin/python3';
const hasScapy = spawnSync(PY, ['-c', 'import scapy.all'], { stdio: 'ignore' }).status === 0;
const isRoot = process.getuid?.() === 0;

const BATCH = 64;
const SLOT = 2048 + C.HEADROOM;
const pc = new PacketCore({ capacity: BATCH });
const descs = pc.wasm.alloc(BATCH * C.DESC_SIZE);
const slots = pc.wasm.alloc(BATCH * SLOT);
const addrs = pc.wasm.alloc(BATCH * 32);

const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytesOf = (h: string) => Uint8Array.from(Buffer.from(h, 'hex'));

/** Copies frames into slots (HEADROOM in front) and points descriptors 0..n-1 at them. */
function load(frames: Uint8Array[]): void {
  const u8 = pc.wasm.u8();
  const dv = pc.wasm.dv();
  frames.forEach((f, i) => {
    const p = slots + i * SLOT + C.HEADROOM;
    u8.set(f, p);
    dv.setUint32(descs + i * C.DESC_SIZE + C.DESC_PTR, p, true);
    dv.setUint32(descs + i * C.DESC_SIZE + C.DESC_LEN, f.length, true);
  });
}

const descU32 = (i: number, field: number) => pc.wasm.dv().getUint32(descs + i * C.DESC_SIZE + field, true);
const setDesc = (i: number, field: number, v: number) =>
  pc.wasm.dv().setUint32(descs + i * C.DESC_SIZE + field, v >>> 0, true);
/** The bytes descriptor i points at now. */
const descBytes = (i: number) =>
  pc.wasm.u8().slice(descU32(i, C.DESC_PTR), descU32(i, C.DESC_PTR) + descU32(i, C.DESC_LEN));

/** Parses descriptors 0..n-1 and returns their records. */
function parseAll(n: number): ParsedFrame[] {
  pc.parse(descs, n);
  return Array.from({ length: n }, (_, i) => pc.record(i));
}

/** Moves descriptors to the UDP payload of the outer frames just parsed, then strips VXLAN. */
function toInner(recs: ParsedFrame[]): void {
  recs.forEach((r, i) => {
    setDesc(i, C.DESC_PTR, descU32(i, C.DESC_PTR) + r.payloadOffset);
    setDesc(i, C.DESC_LEN, r.payloadLength);
  });
  pc.pullVxlan(descs, recs.length);
}

function runPython(script: string, input: unknown): unknown {
  const out = execFileSync(PY, ['-c', script], {
    input: JSON.stringify(input),
    stdio: ['pipe', 'pipe', 'ignore'],
    timeout: 60_000,
  });
  return JSON.parse(out.toString());
}

// ---- (a) scapy ----------------------------------------------------------------------------------

const SCAPY_BUILD = `
import json, sys
from scapy.all import *
E = lambda **k: Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", **k)
v4 = lambda: IP(src="192.168.1.1", dst="192.168.1.2")
v6 = lambda: IPv6(src="fd00::1", dst="fd00::2")
inner = [
  ("tcp", E()/v4()/TCP(sport=40000, dport=80, flags="S", options=[("MSS", 1460), ("WScale", 7)])/Raw(b"x" * 10)),
  ("udp", E()/v4()/UDP(sport=5000, dport=53)/Raw(b"q" * 33)),
  ("arp", E()/ARP(op=2, hwsrc="02:00:00:00:00:01", psrc="192.168.1.1", hwdst="02:00:00:00:00:02", pdst="192.168.1.2")),
  ("vlan", E()/Dot1Q(vlan=123)/v4()/UDP(sport=1, dport=2)/Raw(b"v" * 100)),
  ("qinq", E(type=0x88a8)/Dot1AD(vlan=7)/Dot1Q(vlan=8)/v6()/TCP(sport=22, dport=5555)/Raw(b"s" * 7)),
  ("v6udp", E()/v6()/UDP(sport=546, dport=547)/Raw(b"d" * 1200)),
  ("icmp", E()/v4()/ICMP()/Raw(b"p" * 56)),
]
vnis = [0, 1, 42, 4096, 0x123456, 0xfffffe, 0xffffff]
out = []
for i, (name, f) in enumerate(inner):
  udpck = None if i % 2 == 0 else 0  # None: scapy computes it; 0: "no checksum"
  o = Ether()/IP(src="10.0.0.1", dst="10.0.0.2", ttl=9)/UDP(sport=49152 + i, dport=4789, chksum=udpck)/VXLAN(vni=vnis[i], flags=0x08)/f
  f = Ether(bytes(f))
  tags = [l for l in (f.getlayer(Dot1AD), f.getlayer(Dot1Q)) if l is not None]
  l4 = f.getlayer(TCP) or f.getlayer(UDP)
  out.append({
    "name": name, "hex": bytes(o).hex(), "inner": bytes(f).hex(), "vni": vnis[i], "sport": 49152 + i,
    "udpck": bytes(o)[40:42].hex(),
    "ethertype": (tags[-1].type if tags else f.type),
    "vlan": tags[-1].vlan if tags else 0, "vlanOuter": tags[0].vlan if len(tags) == 2 else 0,
    "l4Proto": (f[IP].proto if IP in f else f[IPv6].nh if IPv6 in f else 0),
    "srcPort": l4.sport if l4 else 0, "dstPort": l4.dport if l4 else 0,
    "payloadLength": len(bytes(l4.payload)) if l4 else 0,
    "arpOp": f[ARP].op if ARP in f else 0,
  })
print(json.dumps(out))
`;

interface ScapyFrame {
  name: string;
  hex: string;
  inner: string;
  vni: number;
  sport: number;
  udpck: string;
  ethertype: number;
  vlan: number;
  vlanOuter: number;
  l4Proto: number;
  srcPort: number;
  dstPort: number;
  payloadLength: number;
  arpOp: number;
}

test('scapy-built VXLAN frames parse in vxnet to the fields scapy put there', { skip: !hasScapy }, () => {
  const frames = runPython(SCAPY_BUILD, null) as ScapyFrame[];
  assert.equal(frames.length, 7);
  load(frames.map((f) => bytesOf(f.hex)));
  const outer = parseAll(frames.length);
  pc.verifyChecksums(descs, frames.length);
  frames.forEach((f, i) => {
    const o = outer[i]!;
    assert.equal(o.status, C.PARSE_OK, f.name);
    assert.equal(o.flags, C.PARSE_F_ETH | C.PARSE_F_IPV4 | C.PARSE_F_UDP, f.name);
    assert.equal(o.srcPort, f.sport);
    assert.equal(o.dstPort, C.VXLAN_PORT);
    const bits = pc.checksumBits(descs, i);
    assert.ok(bits & C.CSUM_V_IP_OK, `${f.name}: outer IP checksum`);
    if (f.udpck === '0000') assert.ok(bits & C.CSUM_V_L4_NONE, `${f.name}: zero UDP checksum accepted`);
    else assert.ok(bits & C.CSUM_V_L4_OK, `${f.name}: outer UDP checksum`);
  });
  toInner(outer);
  frames.forEach((f, i) => {
    assert.equal(descU32(i, C.DESC_VERDICT), C.VERDICT_LOCAL, f.name);
    assert.equal(descU32(i, C.DESC_VNI), f.vni, f.name);
    assert.equal(hexOf(descBytes(i)), f.inner, `${f.name}: inner frame`);
  });
  const inner = parseAll(frames.length);
  pc.verifyChecksums(descs, frames.length);
  frames.forEach((f, i) => {
    const r = inner[i]!;
    assert.equal(r.status, C.PARSE_OK, f.name);
    const got = {
      ethertype: r.ethertype,
      vlan: r.vlan,
      vlanOuter: r.vlanOuter,
      l4Proto: r.l4Proto,
      srcPort: r.srcPort,
      dstPort: r.dstPort,
      payloadLength: r.payloadLength,
      arpOp: r.arpOp,
    };
    const { ethertype, vlan, vlanOuter, l4Proto, srcPort, dstPort, payloadLength, arpOp } = f;
    const want = { ethertype, vlan, vlanOuter, l4Proto, srcPort, dstPort, payloadLength, arpOp };
    assert.deepEqual(got, want, f.name);
    assert.ok(!pc.checksumBad(descs, i), `${f.name}: inner checksums`);
    if (r.flags & (C.PARSE_F_UDP | C.PARSE_F_TCP))
      assert.ok(pc.checksumBits(descs, i) & C.CSUM_V_L4_OK, f.name);
  });
});

test('scapy-built VXLAN headers with bad flags or reserved bits are dropped with their reason', {
  skip: !hasScapy,
}, () => {
  const [f] = runPython(SCAPY_BUILD, null) as ScapyFrame[];
  const vx = bytesOf(f!.hex).subarray(42);
  const cases: Array<[number, number, number]> = [
    [0, 0x00, C.DROP_VXLAN_FLAGS], // I missing
    [0, 0x0c, C.DROP_VXLAN_FLAGS], // I + another flag
    [0, 0x88, C.DROP_VXLAN_FLAGS], // I + G (group policy)
    [1, 0x01, C.DROP_VXLAN_RESERVED],
    [3, 0x80, C.DROP_VXLAN_RESERVED],
    [7, 0x01, C.DROP_VXLAN_RESERVED],
  ];
  load(cases.map(([at, v]) => Uint8Array.from(vx).fill(v, at, at + 1)));
  assert.equal(pc.pullVxlan(descs, cases.length), 0);
  cases.forEach(([at, v, reason], i) => {
    assert.equal(descU32(i, C.DESC_VERDICT), C.VERDICT_DROP, `byte ${at} = ${v}`);
    assert.equal(descU32(i, C.DESC_ARG), reason, `byte ${at} = ${v}`);
  });
});

const SCAPY_DISSECT = `
import json, sys
from scapy.all import *
out = []
for h in json.load(sys.stdin):
  b = bytes.fromhex(h)
  p = IP(b)
  q = IP(b); del q.chksum
  ipok = IP(bytes(q)).chksum == p.chksum
  u = p[UDP]
  if u.chksum == 0:
    udpok = None
  else:
    q = IP(b); del q[UDP].chksum
    udpok = IP(bytes(q))[UDP].chksum == u.chksum
  v = p[VXLAN]
  out.append({
    "version": p.version, "ihl": p.ihl, "len": p.len, "id": p.id, "flags": int(p.flags), "frag": p.frag,
    "ttl": p.ttl, "tos": p.tos, "proto": p.proto, "src": p.src, "dst": p.dst, "ipok": ipok,
    "sport": u.sport, "dport": u.dport, "ulen": u.len, "udpck": u.chksum, "udpok": udpok,
    "vxflags": int(v.flags), "vni": v.vni, "inner": bytes(v.payload).hex(),
    "innerdst": v[Ether].dst,
  })
print(json.dumps(out))
`;

interface Dissected {
  version: number;
  ihl: number;
  len: number;
  id: number;
  flags: number;
  frag: number;
  ttl: number;
  tos: number;
  proto: number;
  src: string;
  dst: string;
  ipok: boolean;
  sport: number;
  dport: number;
  ulen: number;
  udpck: number;
  udpok: boolean | null;
  vxflags: number;
  vni: number;
  inner: string;
  innerdst: string;
}

/** Writes a sockaddr_in for `ip:port` at addrs[i] and points descriptor i's DESC_ADDR at it. */
function setPeer(i: number, ip: string, port: number): void {
  const a = addrs + i * 32;
  const dv = pc.wasm.dv();
  dv.setUint16(a, 2, true);
  dv.setUint16(a + 2, port, false);
  for (const [k, q] of ip.split('.').entries()) dv.setUint8(a + 4 + k, Number(q));
  setDesc(i, C.DESC_ADDR, a);
}

/** Encapsulates `frames` with `opts` towards ip:port with VNIs `vnis`; returns the datagrams. */
function encap(
  frames: Uint8Array[],
  vnis: number[],
  opts: OuterOptions,
  ip: string,
  port: number,
): Uint8Array[] {
  pc.configureOuter(opts);
  load(frames);
  frames.forEach((_, i) => {
    setDesc(i, C.DESC_VNI, vnis[i]!);
    setPeer(i, ip, port);
  });
  assert.equal(pc.encapV4(descs, frames.length), frames.length);
  return frames.map((_, i) => descBytes(i));
}

test('datagrams vxnet builds are dissected by scapy to the requested fields with valid checksums', {
  skip: !hasScapy,
}, () => {
  const inner = (runPython(SCAPY_BUILD, null) as ScapyFrame[]).map((f) => bytesOf(f.inner));
  const vnis = inner.map((_, i) => [0, 1, 42, 4096, 0x123456, 0xfffffe, 0xffffff][i]!);
  const withCsum = encap(
    inner,
    vnis,
    { source: '10.1.2.3', ttl: 64, udpChecksum: true, dontFragment: true, sourcePorts: [1000, 1100] },
    '10.9.8.7',
    4789,
  );
  const plain = encap(
    inner,
    vnis,
    { source: '10.1.2.3', ttl: 3, tos: 0x10, udpChecksum: false, dontFragment: false },
    '10.9.8.7',
    4789,
  );
  const got = runPython(SCAPY_DISSECT, [...withCsum, ...plain].map(hexOf)) as Dissected[];
  got.forEach((d, k) => {
    const i = k % inner.length;
    const csum = k < inner.length;
    const msg = `datagram ${k}`;
    assert.equal(d.version, 4, msg);
    assert.equal(d.ihl, 5, msg);
    assert.equal(d.len, inner[i]!.length + 36, msg);
    assert.equal(d.proto, 17, msg);
    assert.equal(d.src, '10.1.2.3', msg);
    assert.equal(d.dst, '10.9.8.7', msg);
    assert.equal(d.ipok, true, `${msg}: IPv4 header checksum`);
    assert.equal(d.ttl, csum ? 64 : 3, msg);
    assert.equal(d.tos, csum ? 0 : 0x10, msg);
    assert.equal(d.flags, csum ? 2 : 0, `${msg}: DF`);
    assert.equal(d.frag, 0, msg);
    assert.equal(d.dport, 4789, msg);
    assert.equal(d.ulen, inner[i]!.length + 16, msg);
    if (csum) {
      assert.ok(d.sport >= 1000 && d.sport < 1100, `${msg}: source port ${d.sport} in range`);
      assert.notEqual(d.udpck, 0, msg);
      assert.equal(d.udpok, true, `${msg}: UDP checksum`);
    } else {
      assert.ok(d.sport >= C.OUTER_PORT_MIN_DEFAULT && d.sport < C.OUTER_PORT_MAX_DEFAULT, msg);
      assert.equal(d.udpck, 0, msg);
    }
    assert.equal(d.vxflags, 0x08, msg);
    assert.equal(d.vni, vnis[i], msg);
    assert.equal(d.inner, hexOf(inner[i]!), `${msg}: inner frame`);
  });
  // Without DF the IP id counts; the same flow keeps its source port.
  assert.equal(got[inner.length + 1]!.id, (got[inner.length]!.id + 1) & 0xffff);
  const again = encap([inner[0]!, inner[0]!], [1, 2], { source: '10.1.2.3' }, '10.9.8.7', 4789);
  assert.equal(again[0]![20]! * 256 + again[0]![21]!, again[1]![20]! * 256 + again[1]![21]!);
});

// ---- (b) the Linux kernel's vxlan device -----------------------------------------------------

const HELPER = String.raw`
import json, os, select, socket, sys
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind((sys.argv[1], 4789))
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # ETH_P_ALL: also receive
raw.bind((sys.argv[2], 0))
print(json.dumps({"ready": True}), flush=True)
pending = b""
while True:
  r, _, _ = select.select([udp, raw, 0], [], [])
  if raw in r:
    # Whole frames arriving on the underlay veth: the kernel's outer headers, for vxnet to parse.
    data, (_, _, pkttype, _, _) = raw.recvfrom(65535)
    if pkttype != socket.PACKET_OUTGOING and data[12:14] == b"\x08\x00" and data[23] == 17 and data[36:38] == b"\x12\xb5":
      print(json.dumps({"l2": data.hex()}), flush=True)
  if udp in r:
    data, addr = udp.recvfrom(65535)
    print(json.dumps({"rx": data.hex(), "from": addr[0]}), flush=True)
  if 0 in r:
    # Raw reads: a buffered readline would keep further lines where select cannot see them.
    chunk = os.read(0, 1 << 20)
    if not chunk:
      break
    pending += chunk
    while b"\n" in pending:
      line, pending = pending.split(b"\n", 1)
      raw.send(bytes.fromhex(line.decode().strip()))
`;

function ip(...args: string[]): string {
  return execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

/** The RFC 1071 checksum of b[from, from+len), big-endian (the plain reference). */
function csum(b: Uint8Array, from: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i += 2) s += (b[from + i]! << 8) | (b[from + i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

const macBytes = (m: string) => m.split(':').map((x) => Number.parseInt(x, 16));
const ipBytes = (a: string) => a.split('.').map(Number);

/** Ether/IPv4/ICMP echo request, checksums by the reference. */
function echoRequest(o: {
  dstMac: string;
  srcMac: string;
  src: string;
  dst: string;
  id: number;
  seq: number;
}) {
  const payload = Array.from({ length: 32 }, (_, i) => i);
  const icmp = [8, 0, 0, 0, o.id >> 8, o.id & 0xff, o.seq >> 8, o.seq & 0xff, ...payload];
  const tot = 20 + icmp.length;
  const iph = [
    0x45,
    0,
    tot >> 8,
    tot & 0xff,
    0,
    o.seq,
    0x40,
    0,
    64,
    1,
    0,
    0,
    ...ipBytes(o.src),
    ...ipBytes(o.dst),
  ];
  const f = Uint8Array.from([...macBytes(o.dstMac), ...macBytes(o.srcMac), 8, 0, ...iph, ...icmp]);
  const ic = csum(f, 14, 20);
  f[24] = ic >> 8;
  f[25] = ic & 0xff;
  const cc = csum(f, 34, icmp.length);
  f[36] = cc >> 8;
  f[37] = cc & 0xff;
  return f;
}

test('the Linux kernel vxlan device and vxnet understand each other', {
  skip: !isRoot,
  timeout: 60_000,
}, async (t) => {
  const sfx = randomBytes(3).toString('hex');
  const nsA = `vxwire-a-${sfx}`;
  const nsB = `vxwire-b-${sfx}`;
  const vA = `vwa${sfx}`;
  const vB = `vwb${sfx}`;
  const VX_MAC = '02:42:ac:00:00:01';
  const PEER_MAC = '02:42:ac:00:00:02';
  let helper: ChildProcessWithoutNullStreams | undefined;
  t.after(() => {
    helper?.kill();
    spawnSync('ip', ['netns', 'del', nsA], { stdio: 'ignore' });
    spawnSync('ip', ['netns', 'del', nsB], { stdio: 'ignore' });
  });
  ip('netns', 'add', nsA);
  ip('netns', 'add', nsB);
  // No IPv6 on the kernel side: vx0 coming up would otherwise send router solicitations and MLD
  // reports through the tunnel at random moments, and the capture below counts every frame.
  for (const ns of [nsA, nsB]) {
    execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1'], {
      stdio: 'ignore',
    });
    execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.default.disable_ipv6=1'], {
      stdio: 'ignore',
    });
  }
  ip('link', 'add', vA, 'netns', nsA, 'type', 'veth', 'peer', 'name', vB, 'netns', nsB);
  ip('-n', nsA, 'addr', 'add', '10.99.0.1/24', 'dev', vA);
  ip('-n', nsB, 'addr', 'add', '10.99.0.2/24', 'dev', vB);
  for (const [ns, dev] of [
    [nsA, vA],
    [nsB, vB],
    [nsA, 'lo'],
    [nsB, 'lo'],
  ] as const) {
    ip('-n', ns, 'link', 'set', dev, 'up');
  }
  ip(
    '-n',
    nsA,
    'link',
    'add',
    'vx0',
    'type',
    'vxlan',
    'id',
    '42',
    'remote',
    '10.99.0.2',
    'local',
    '10.99.0.1',
    'dstport',
    '4789',
    'dev',
    vA,
  );
  ip('-n', nsA, 'link', 'set', 'vx0', 'address', VX_MAC, 'up');
  ip('-n', nsA, 'addr', 'add', '192.168.99.1/24', 'dev', 'vx0');
  ip('-n', nsA, 'neigh', 'add', '192.168.99.2', 'lladdr', PEER_MAC, 'dev', 'vx0', 'nud', 'permanent');
  const macOf = (ns: string, dev: string) =>
    (JSON.parse(ip('-j', '-n', ns, 'link', 'show', dev)) as Array<{ address: string }>)[0]!.address;
  // Let the kernel finish its UDP checksums before the wire, as a NIC would (see FACTS.md), so the
  // captured outer checksum is the kernel's own.
  execFileSync('ip', ['netns', 'exec', nsA, 'ethtool', '-K', vA, 'tx', 'off'], { stdio: 'ignore' });
  const macA = macOf(nsA, vA);
  const macB = macOf(nsB, vB);

  // The helper in B: a UDP socket on 10.99.0.2:4789 (receives what the kernel sends) and an
  // AF_PACKET socket on the veth (sends vxnet's datagrams byte for byte).
  helper = spawn('ip', ['netns', 'exec', nsB, PY, '-c', HELPER, '10.99.0.2', vB]);
  const rx: Uint8Array[] = [];
  const l2: Uint8Array[] = [];
  const waiters: Array<() => void> = [];
  const lines = createInterface({ input: helper.stdout });
  let ready!: () => void;
  const readyP = new Promise<void>((res) => {
    ready = res;
  });
  lines.on('line', (l) => {
    const m = JSON.parse(l) as { ready?: boolean; rx?: string; from?: string; l2?: string };
    if (m.ready) ready();
    if (m.rx && m.from === '10.99.0.1') rx.push(bytesOf(m.rx));
    if (m.l2) l2.push(bytesOf(m.l2));
    for (const w of waiters.splice(0)) w();
  });
  await readyP;

  /** Waits until a received datagram's inner frame satisfies `pred`; returns its parse. */
  async function waitInner(pred: (r: ParsedFrame, f: Uint8Array, vni: number) => boolean, ms: number) {
    const deadline = Date.now() + ms;
    let seen = 0;
    for (;;) {
      for (; seen < rx.length; seen++) {
        load([rx[seen]!]);
        pc.pullVxlan(descs, 1);
        if (descU32(0, C.DESC_VERDICT) !== C.VERDICT_LOCAL) continue;
        const vni = descU32(0, C.DESC_VNI);
        const f = descBytes(0);
        const [r] = parseAll(1);
        if (pred(r!, f, vni)) {
          pc.verifyChecksums(descs, 1);
          return { r: r!, f, vni, csumBits: pc.checksumBits(descs, 0) };
        }
      }
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((res) => {
        const timer = setTimeout(res, left);
        waiters.push(() => {
          clearTimeout(timer);
          res();
        });
      });
    }
  }

  // 1. What the kernel sends: an echo request to a known neighbour, an ARP request for an unknown one.
  spawn('ip', ['netns', 'exec', nsA, 'ping', '-c', '1', '-W', '1', '192.168.99.2'], { stdio: 'ignore' });
  spawn('ip', ['netns', 'exec', nsA, 'ping', '-c', '1', '-W', '1', '192.168.99.3'], { stdio: 'ignore' });
  const ipAt = (f: Uint8Array, at: number) => Array.from(f.subarray(at, at + 4)).join('.');
  const echo = await waitInner(
    (r, f) => !!(r.flags & C.PARSE_F_IPV4) && r.l4Proto === 1 && f[r.l4Offset] === 8,
    5000,
  );
  assert.ok(echo, 'vxnet parsed the kernel-encapsulated echo request');
  assert.equal(echo.vni, 42);
  assert.equal(echo.r.status, C.PARSE_OK);
  assert.equal(ipAt(echo.f, echo.r.l3Offset + 12), '192.168.99.1');
  assert.equal(ipAt(echo.f, echo.r.l3Offset + 16), '192.168.99.2');
  assert.equal(hexOf(echo.f.subarray(0, 12)), (PEER_MAC + VX_MAC).replaceAll(':', ''));
  assert.ok(echo.csumBits & C.CSUM_V_IP_OK, 'inner IPv4 checksum of the kernel frame');
  const arp = await waitInner((r) => !!(r.flags & C.PARSE_F_ARP), 5000);
  assert.ok(arp, 'vxnet parsed the kernel-encapsulated ARP request');
  assert.equal(arp.vni, 42);
  assert.equal(arp.r.arpOp, 1);
  assert.equal(ipAt(arp.f, arp.r.l3Offset + 24), '192.168.99.3');
  assert.equal(hexOf(arp.f.subarray(0, 6)), 'ffffffffffff');

  // The same datagrams as whole frames on the underlay: vxnet parses the kernel's outer headers
  // and agrees with its checksums.
  // The helper reports a datagram's UDP receive and its AF_PACKET capture on separate lines, in
  // either order: wait for the captures of both.
  const captureDeadline = Date.now() + 5000;
  while (l2.length < 2 && Date.now() < captureDeadline) {
    await new Promise<void>((res) => {
      const timer = setTimeout(res, captureDeadline - Date.now());
      waiters.push(() => {
        clearTimeout(timer);
        res();
      });
    });
  }
  assert.ok(l2.length >= 2, `captured ${l2.length} underlay frames`);
  load(l2);
  const outer = parseAll(l2.length);
  pc.verifyChecksums(descs, l2.length);
  outer.forEach((o, i) => {
    assert.equal(o.flags, C.PARSE_F_ETH | C.PARSE_F_IPV4 | C.PARSE_F_UDP, `underlay frame ${i}`);
    assert.equal(o.dstPort, C.VXLAN_PORT);
    const bits = pc.checksumBits(descs, i);
    assert.ok(bits & C.CSUM_V_IP_OK, `underlay frame ${i}: kernel IPv4 checksum`);
    assert.ok(
      bits & C.CSUM_V_L4_OK,
      `underlay frame ${i}: the kernel's UDP checksum verifies (bits ${bits})`,
    );
    assert.ok(!(bits & C.CSUM_V_BAD), `underlay frame ${i}`);
  });
  toInner(outer);
  for (let i = 0; i < outer.length; i++) assert.equal(descU32(i, C.DESC_VNI), 42, `underlay frame ${i}: VNI`);
  parseAll(l2.length).forEach((r, i) => {
    assert.equal(r.status, C.PARSE_OK, `underlay frame ${i}: inner frame parses`);
    assert.ok(
      r.flags & (C.PARSE_F_IPV4 | C.PARSE_F_ARP),
      `underlay frame ${i}: inner IPv4 or ARP (flags ${r.flags})`,
    );
  });

  // 2. What vxnet builds: echo requests the kernel must decapsulate and answer through the tunnel.
  const req = (seq: number) =>
    echoRequest({
      dstMac: VX_MAC,
      srcMac: PEER_MAC,
      src: '192.168.99.2',
      dst: '192.168.99.1',
      id: 0x4242,
      seq,
    });
  const send = (datagram: Uint8Array) => {
    const eth = Uint8Array.from([...macBytes(macA), ...macBytes(macB), 8, 0, ...datagram]);
    helper!.stdin.write(`${hexOf(eth)}\n`);
  };
  const base = { source: '10.99.0.2', sourcePorts: [40000, 50000] as [number, number] };
  const [withCsum] = encap([req(1)], [42], { ...base, udpChecksum: true }, '10.99.0.1', 4789);
  const [noCsum] = encap(
    [req(2)],
    [42],
    { ...base, udpChecksum: false, dontFragment: false },
    '10.99.0.1',
    4789,
  );
  // Negative controls: a wrong (non-zero) UDP checksum over an intact inner frame, a bad VXLAN flag.
  const [badCsum] = encap([req(3)], [42], { ...base, udpChecksum: true }, '10.99.0.1', 4789);
  const wrong = badCsum![26]! === 0x12 && badCsum![27]! === 0x34 ? [0x43, 0x21] : [0x12, 0x34];
  badCsum!.set(wrong, 26);
  const [badFlags] = encap([req(4)], [42], { ...base, udpChecksum: false }, '10.99.0.1', 4789);
  badFlags![28] = 0x0c;
  for (const d of [withCsum!, noCsum!, badCsum!, badFlags!]) send(d);
  const reply = (seq: number) => (r: ParsedFrame, f: Uint8Array, vni: number) =>
    vni === 42 &&
    r.l4Proto === 1 &&
    f[r.l4Offset] === 0 &&
    f[r.l4Offset + 4] === 0x42 &&
    f[r.l4Offset + 7] === seq;
  const r1 = await waitInner(reply(1), 5000);
  assert.ok(r1, 'the kernel answered the echo request vxnet encapsulated with a UDP checksum');
  assert.ok(
    await waitInner(reply(2), 5000),
    'the kernel answered the echo request vxnet encapsulated without one',
  );
  assert.equal(ipAt(r1.f, r1.r.l3Offset + 12), '192.168.99.1');
  assert.equal(hexOf(r1.f.subarray(0, 6)), PEER_MAC.replaceAll(':', ''));
  assert.equal(
    await waitInner(reply(3), 1000),
    undefined,
    'a datagram with a bad UDP checksum must be dropped',
  );
  assert.equal(await waitInner(reply(4), 200), undefined, 'a datagram with bad VXLAN flags must be dropped');
});

test('outer options are validated with stable codes, and an oversize datagram is refused', () => {
  const bad: Array<[Partial<OuterOptions>, string, RegExp]> = [
    [{ source: '10.0.0.300' }, 'ERR_INVALID_ADDRESS', /options\.source/],
    [{ source: 'fd00::1' }, 'ERR_INVALID_ADDRESS', /options\.source/],
    [{ ttl: 0 }, 'ERR_INVALID_ARG', /options\.ttl/],
    [{ ttl: 256 }, 'ERR_INVALID_ARG', /options\.ttl/],
    [{ tos: -1 }, 'ERR_INVALID_ARG', /options\.tos/],
    [{ sourcePorts: [2000, 2000] }, 'ERR_INVALID_ARG', /sourcePorts\[1\]/],
    [{ sourcePorts: [0, 10] }, 'ERR_INVALID_ARG', /sourcePorts\[0\]/],
  ];
  for (const [o, code, message] of bad) {
    assert.throws(
      () => pc.configureOuter({ source: '10.0.0.1', ...o }),
      { code, message },
      JSON.stringify(o),
    );
  }
  assert.throws(() => pc.encapV4(descs, BATCH + 1), { code: 'ERR_INVALID_ARG' });
  // A frame whose datagram would pass 65535 bytes keeps its place and gets length 0.
  pc.configureOuter({ source: '10.0.0.1' });
  load([new Uint8Array(64)]);
  setDesc(0, C.DESC_LEN, 65535 - 35);
  setPeer(0, '10.0.0.2', 4789);
  const ptr = descU32(0, C.DESC_PTR);
  assert.equal(pc.encapV4(descs, 1), 0);
  assert.equal(descU32(0, C.DESC_LEN), 0);
  assert.equal(descU32(0, C.DESC_PTR), ptr);
});
