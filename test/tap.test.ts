// TapDevice against the real kernel: a TAP created here is moved into a fresh namespace that has
// an address on it; frames written with writeBatch reach that namespace's stack and its replies
// come back through readBatch. Needs root; skipped otherwise.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DESC_LEN,
  DESC_PTR,
  VNET_CSUM_OFFSET,
  VNET_CSUM_START,
  VNET_F_NEEDS_CSUM,
  VNET_FLAGS,
  VNET_HDR_LEN,
} from '../assembly/constants.js';
import { PacketBatch } from '../src/io/batch.js';
import { EventLoopDriver } from '../src/io/poller.js';
import { TapDevice } from '../src/io/tap.js';
import { core } from '../src/wasm/module.js';

const root = process.getuid?.() === 0;
const sfx = randomBytes(3).toString('hex');
const NS = `vxt-tap-${sfx}`;
const NS2 = `vxt-tap2-${sfx}`;
const OUR_MAC = [0x02, 0x00, 0x00, 0xaa, 0xbb, 0xcc];
const OUR_IP = [10, 201, 7, 2];
const NS_IP = [10, 201, 7, 1];
const ip = (...a: string[]) => execFileSync('ip', a, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

function sum16(b: Uint8Array, start: number, end: number, init = 0): number {
  let s = init;
  for (let i = start; i < end; i += 2) s += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}
const csum = (b: Uint8Array, start: number, end: number, init = 0) => ~sum16(b, start, end, init) & 0xffff;

/** Ethernet + IPv4 header (20 bytes, checksummed) for `proto` with `l4len` bytes of payload. */
function ipv4(dstMac: number[], proto: number, l4len: number): Uint8Array {
  const f = new Uint8Array(34 + l4len);
  f.set(dstMac, 0);
  f.set(OUR_MAC, 6);
  f.set([0x08, 0x00, 0x45, 0, (20 + l4len) >> 8, (20 + l4len) & 0xff, 0, 1, 0x40, 0, 64, proto], 12);
  f.set(OUR_IP, 26);
  f.set(NS_IP, 30);
  const c = csum(f, 14, 34);
  f[24] = c >> 8;
  f[25] = c & 0xff;
  return f;
}

function pseudo(f: Uint8Array, proto: number, l4len: number): number {
  return sum16(f, 26, 34, proto + l4len);
}

let nsMac: number[] = [];

/** Copies frames into batch slots and describes them in the batch's descriptors. */
function put(batch: PacketBatch, frames: Uint8Array[], hdrs?: Uint8Array[]): void {
  const dv = core().dv();
  const u8 = core().u8();
  frames.forEach((f, i) => {
    u8.set(f, batch.frame(i));
    if (hdrs) u8.set(hdrs[i]!, batch.frame(i) - VNET_HDR_LEN);
    dv.setUint32(batch.desc(i) + DESC_PTR, batch.frame(i), true);
    dv.setUint32(batch.desc(i) + DESC_LEN, f.length, true);
  });
}

interface Got {
  frame: Uint8Array;
  hdr: Uint8Array;
}
const seen: Got[] = [];

/** Reads until a frame matching `want` arrives (2 s at most); returns it (and its vnet header). */
async function readUntil(tap: TapDevice, batch: PacketBatch, want: (f: Uint8Array) => boolean) {
  for (let t = 0; t < 200; t++) {
    const hit = seen.findIndex((g) => want(g.frame));
    if (hit >= 0) return seen.splice(hit, 1)[0]!;
    const n = tap.readBatch(batch);
    const dv = core().dv();
    for (let i = 0; i < n; i++) {
      const p = dv.getUint32(batch.desc(i) + DESC_PTR, true);
      const len = dv.getUint32(batch.desc(i) + DESC_LEN, true);
      assert.equal(p, batch.frame(i));
      seen.push({
        frame: core()
          .u8()
          .slice(p, p + len),
        hdr: core()
          .u8()
          .slice(p - VNET_HDR_LEN, p),
      });
    }
    if (n === 0) await sleep(10);
  }
  throw new Error('no matching frame within 2 s');
}

/** Creates a TAP with `opts`, moves it into NS with NS_IP on it and a static neighbour for us. */
function tapInNs(name: string, opts: { vnetHdr?: boolean } = {}): TapDevice {
  seen.length = 0;
  const tap = TapDevice.open({ name, ...opts });
  ip('link', 'set', 'dev', name, 'netns', NS);
  tap.setLink({ netns: NS, mtu: 1500, up: true });
  ip('-n', NS, 'addr', 'add', `${NS_IP.join('.')}/24`, 'dev', name);
  ip(
    '-n',
    NS,
    'neigh',
    'replace',
    OUR_IP.join('.'),
    'lladdr',
    OUR_MAC.map((x) => x.toString(16)).join(':'),
    'dev',
    name,
  );
  const mac = JSON.parse(ip('-j', '-n', NS, 'link', 'show', 'dev', name))[0].address as string;
  nsMac = mac.split(':').map((x) => Number.parseInt(x, 16));
  return tap;
}

before(() => {
  if (root) ip('netns', 'add', NS);
  if (root) ip('netns', 'add', NS2);
});
after(() => {
  if (root) execFileSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
  if (root) execFileSync('ip', ['netns', 'del', NS2], { stdio: 'ignore' });
});

test('non-blocking read on an empty TAP returns 0 at once; name is kept; close removes it', {
  skip: !root,
}, () => {
  const name = `vxt${sfx}a`;
  const tap = TapDevice.open({ name });
  try {
    assert.equal(tap.name, name);
    const batch = new PacketBatch({ capacity: 4 });
    const t0 = process.hrtime.bigint();
    assert.equal(tap.readBatch(batch), 0);
    assert.ok(Number(process.hrtime.bigint() - t0) < 50e6);
  } finally {
    tap.close();
    tap.close();
  }
  assert.throws(() => ip('link', 'show', 'dev', name));
});

test('bad options are refused with stable codes', { skip: !root }, () => {
  assert.throws(() => TapDevice.open({ name: 'much-too-long-name0' }), { code: 'ERR_INVALID_ARG' });
  const tap = TapDevice.open({});
  try {
    assert.match(tap.name, /^tap\d+$/);
    assert.throws(() => tap.setLink({ mtu: 10 }), { code: 'ERR_INVALID_ARG' });
  } finally {
    tap.close();
  }
  const tso = TapDevice.open({ vnetHdr: true });
  try {
    assert.throws(() => tso.readBatch(new PacketBatch({ capacity: 1, frameCapacity: 2048 })), {
      code: 'ERR_INVALID_ARG',
      message: /frameCapacity >= 65550/,
    });
    assert.equal(tso.readBatch(new PacketBatch({ capacity: 1, frameCapacity: 65550 })), 0);
  } finally {
    tso.close();
  }
});

test('an ARP request (writeBatch) and an echo request (writeGather) are answered, read back by readBatch', {
  skip: !root,
}, async () => {
  const tap = tapInNs(`vxt${sfx}b`);
  try {
    const batch = new PacketBatch({ capacity: 8 });
    const arp = new Uint8Array(42);
    arp.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, ...OUR_MAC, 0x08, 0x06], 0);
    arp.set([0, 1, 0x08, 0, 6, 4, 0, 1, ...OUR_MAC, ...OUR_IP, 0, 0, 0, 0, 0, 0, ...NS_IP], 14);
    // An echo request in the same batch: two frames in one writeBatch.
    const icmp = ipv4(nsMac, 1, 16);
    icmp.set([8, 0, 0, 0, 0x12, 0x34, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8], 34);
    const c = csum(icmp, 34, 50);
    icmp[36] = c >> 8;
    icmp[37] = c & 0xff;
    put(batch, [arp]);
    assert.equal(tap.writeBatch(batch.descs, 1), 1);
    // The echo request goes out by gather, in three pieces from three places.
    const u8 = core().u8();
    const dv = core().dv();
    const pieces = [icmp.subarray(0, 14), icmp.subarray(14, 34), icmp.subarray(34)];
    const list = core().alloc(3 * 8);
    pieces.forEach((p, i) => {
      const at = batch.frame(1 + i);
      u8.set(p, at);
      dv.setUint32(list + 8 * i, at, true);
      dv.setUint32(list + 8 * i + 4, p.length, true);
    });
    dv.setUint32(batch.desc(0) + DESC_PTR, list, true);
    dv.setUint32(batch.desc(0) + DESC_LEN, 3, true);
    assert.equal(tap.writeGather(batch.descs, 1), 1);
    const rx = new PacketBatch({ capacity: 8 });
    const reply = await readUntil(tap, rx, (f) => f[12] === 0x08 && f[13] === 0x06 && f[21] === 2);
    assert.deepEqual([...reply.frame.subarray(22, 28)], nsMac, 'sender MAC is the TAP MAC');
    assert.deepEqual([...reply.frame.subarray(28, 32)], NS_IP);
    assert.deepEqual([...reply.frame.subarray(32, 38)], OUR_MAC);
    const echo = await readUntil(tap, rx, (f) => f[23] === 1 && f[34] === 0);
    assert.deepEqual([...echo.frame.subarray(38, 50)], [0x12, 0x34, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert.ok(tap.stats.rxFrames >= 2);
    assert.equal(tap.stats.txFrames, 2);
  } finally {
    tap.close();
  }
});

test('IFF_VNET_HDR: a partial-checksum frame is completed by the kernel, replies carry the header', {
  skip: !root,
}, async () => {
  const tap = tapInNs(`vxt${sfx}c`, { vnetHdr: true });
  const port = 40000 + Math.floor(Math.random() * 1000);
  const listener = udpListener(NS, port);
  try {
    await listener.ready;
    const batch = new PacketBatch({ capacity: 4 });
    // UDP datagram whose checksum field holds only the pseudo-header sum (as a TSO/CSUM sender
    // leaves it). Without VNET_F_NEEDS_CSUM the namespace would drop it as corrupt.
    const payload = new TextEncoder().encode('vnet-hdr-ok');
    const f = ipv4(nsMac, 17, 8 + payload.length);
    f.set([0x9c, 0x40, port >> 8, port & 0xff, 0, 8 + payload.length, 0, 0], 34);
    f.set(payload, 42);
    const ps = pseudo(f, 17, 8 + payload.length);
    f[40] = ps >> 8;
    f[41] = ps & 0xff;
    const hdr = new Uint8Array(VNET_HDR_LEN);
    hdr[VNET_FLAGS] = VNET_F_NEEDS_CSUM;
    new DataView(hdr.buffer).setUint16(VNET_CSUM_START, 34, true);
    new DataView(hdr.buffer).setUint16(VNET_CSUM_OFFSET, 6, true);
    put(batch, [f], [hdr]);
    assert.equal(tap.writeBatch(batch.descs, 1), 1);
    assert.equal(await listener.text, 'vnet-hdr-ok');
    // The listener answers; a UDP send through a TAP with TUN_F_CSUM leaves the checksum partial.
    const pong = await readUntil(
      tap,
      new PacketBatch({ capacity: 8, frameCapacity: 65550 }),
      (x) => x[23] === 17 && x[37] === 0x40,
    );
    const h = new DataView(pong.hdr.buffer);
    assert.equal(pong.hdr[VNET_FLAGS]! & VNET_F_NEEDS_CSUM, VNET_F_NEEDS_CSUM);
    assert.equal(h.getUint16(VNET_CSUM_START, true), 34);
    assert.equal(h.getUint16(VNET_CSUM_OFFSET, true), 6);
    assert.equal(new TextDecoder().decode(pong.frame.subarray(42)), 'pong');
  } finally {
    tap.close();
    await listener.text.catch(() => {});
  }
});

/**
 * Receives one UDP datagram on `port` inside `ns` (5 s timeout), answers 'pong'. `ready` resolves
 * once the socket is bound (a loaded machine can take longer than any fixed sleep to start python);
 * `text` resolves with the datagram's text.
 */
function udpListener(ns: string, port: number): { ready: Promise<void>; text: Promise<string> } {
  const py = `import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('0.0.0.0',${port}));print('ready',flush=True);s.settimeout(5);d,a=s.recvfrom(2000);s.sendto(b'pong',a);print(d.decode(),end='')`;
  const child = spawn('ip', ['netns', 'exec', ns, 'python3', '-c', py], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const ready = new Promise<void>((resolve) => {
    child.stdout.on('data', (d) => {
      out += d;
      if (out.startsWith('ready\n')) resolve();
    });
  });
  const text = new Promise<string>((resolve, reject) => {
    child.on('close', (code) =>
      code === 0 ? resolve(out.slice(6)) : reject(new Error(`listener exited ${code}`)),
    );
  });
  return { ready, text };
}

test('IFF_VNET_HDR + TSO: a TCP stream crosses TAP -> TAP as frames larger than the MTU, intact', {
  skip: !root,
}, async () => {
  const taps = [NS, NS2].map((ns, i) => {
    const tap = TapDevice.open({ name: `vxt${sfx}t${i}`, vnetHdr: true });
    ip('link', 'set', 'dev', tap.name, 'netns', ns);
    ip('-n', ns, 'link', 'set', 'dev', tap.name, 'address', `02:00:00:00:77:0${i + 1}`, 'mtu', '1500', 'up');
    ip('-n', ns, 'addr', 'add', `10.201.8.${i + 1}/24`, 'dev', tap.name);
    return tap;
  });
  let biggest = 0;
  let gsoFrames = 0;
  const pumps = taps.map((from, i) => {
    const batch = new PacketBatch({ capacity: 16, frameCapacity: 65550 });
    return {
      fd: from.fd,
      pump() {
        const n = from.readBatch(batch);
        const dv = core().dv();
        for (let k = 0; k < n; k++) {
          const p = dv.getUint32(batch.desc(k) + DESC_PTR, true);
          biggest = Math.max(biggest, dv.getUint32(batch.desc(k) + DESC_LEN, true));
          if (core().u8()[p - VNET_HDR_LEN + 1] !== 0) gsoFrames++;
        }
        return taps[1 - i]!.writeBatch(batch.descs, n);
      },
    };
  });
  const drv = new EventLoopDriver(pumps);
  drv.start();
  try {
    const port = 41000 + Math.floor(Math.random() * 1000);
    const server = pyIn(
      NS2,
      `import socket,hashlib;s=socket.socket();s.bind(('10.201.8.2',${port}));s.listen(1);c,_=s.accept();h=hashlib.sha256()
while True:
  d=c.recv(1<<20)
  if not d: break
  h.update(d)
print(h.hexdigest(),end='')`,
    );
    await sleep(300);
    const client = pyIn(
      NS,
      // Retries until the server (started just before, maybe slowly on a loaded machine) listens.
      `import socket,hashlib,random,time;random.seed(7);b=random.randbytes(8<<20)
for i in range(100):
  try:
    s=socket.create_connection(('10.201.8.2',${port}));break
  except ConnectionRefusedError: time.sleep(0.05)
s.sendall(b);s.close();print(hashlib.sha256(b).hexdigest(),end='')`,
    );
    const [sent, got] = await Promise.all([client, server]);
    assert.equal(got, sent, 'the stream arrived intact');
    assert.ok(biggest > 1514, `TSO frames larger than the MTU were read (largest ${biggest})`);
    assert.ok(gsoFrames > 0, 'they carried a gso_type in their virtio_net_hdr');
  } finally {
    await drv.stop();
    for (const t of taps) t.close();
  }
});

/** Runs a python3 program inside `ns` (10 s timeout) and resolves with its stdout. */
function pyIn(ns: string, program: string): Promise<string> {
  return new Promise((resolve, reject) => {
    import('node:child_process').then(({ execFile }) =>
      execFile('ip', ['netns', 'exec', ns, 'python3', '-c', program], { timeout: 10000 }, (err, out) =>
        err ? reject(err) : resolve(out),
      ),
    );
  });
}
