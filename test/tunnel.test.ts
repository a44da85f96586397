// `vxnet tunnel` between two simulated hosts (src/lab/pair.ts with no kernel VXLAN port): each
// host runs the command in its namespace, its TAP joins the host's br0, and the containers behind
// the bridges talk through it. Needs root (namespaces, TAP devices).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ip } from '../src/kernel/exec.js';
import { execInNetns, spawnInNetns } from '../src/kernel/netns.js';
import { createPair, overlayMac, type Pair } from '../src/lab/pair.js';

const root = process.getuid?.() === 0;
const MAIN = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');

interface Running {
  child: ChildProcess;
  err: () => string;
  lines: string[];
  exited: Promise<number | null>;
}

/** Starts `vxnet tunnel` in `ns`, waits for its ready line, puts its TAP on br0. */
async function tunnel(ns: string, args: string[]): Promise<Running> {
  const child = spawn(
    'ip',
    ['netns', 'exec', ns, process.execPath, '--import', 'tsx', MAIN, 'tunnel', '--name', 'vx0', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  const lines: string[] = [];
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    const parts = out.split('\n');
    out = parts.pop()!;
    lines.push(...parts.filter(Boolean));
  });
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tunnel in ${ns} not ready: ${err}`)), 30000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('vxnet tunnel: ready\n')) {
        clearTimeout(timer);
        resolve();
      }
    });
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`tunnel in ${ns} exited ${code}: ${err}`));
    });
  });
  await ip(['link', 'set', 'dev', 'vx0', 'master', 'br0', 'up'], { netns: ns, action: 'attach vx0' });
  return { child, err: () => err, lines, exited };
}

async function stats(
  t: Running,
): Promise<{ counters: Record<string, number> & { drops: Record<string, number> } }> {
  const n = t.lines.length;
  t.child.kill('SIGUSR1');
  for (let i = 0; i < 100 && t.lines.length === n; i++) await new Promise((r) => setTimeout(r, 20));
  return JSON.parse(t.lines.at(-1)!);
}

describe('vxnet tunnel between two hosts', { skip: !root && 'needs root' }, () => {
  let pair: Pair;
  const tunnels: Running[] = [];
  const file = `/tmp/vxnet-tunnel-${process.pid}.bin`;

  before(async () => {
    pair = await createPair({ vtep: ['none', 'none'] });
    for (const [i, h] of pair.hosts.entries()) {
      const peer = pair.hosts[1 - i]!;
      tunnels.push(
        await tunnel(h.ns, [
          ...['--vni', String(pair.vni), '--local', h.underlayIp, '--remote', peer.underlayIp],
          ...['--neigh', `${peer.overlayIp}=${overlayMac(peer.overlayIp)}`],
          ...['--fdb', `${overlayMac(peer.overlayIp)}=${peer.underlayIp}`],
        ]),
      );
    }
  });

  after(async () => {
    for (const t of tunnels) t.child.kill('SIGKILL');
    await pair?.destroy();
    rmSync(file, { force: true });
  });

  test('the TAP gets the overlay MTU (underlay 1500 - 50) and is up', async () => {
    const out = await ip(['-j', 'link', 'show', 'dev', 'vx0'], {
      netns: pair.hosts[0].ns,
      action: 'show vx0',
    });
    const [link] = JSON.parse(out) as { mtu: number; flags: string[] }[];
    assert.equal(link!.mtu, 1450);
    assert.ok(link!.flags.includes('UP'));
  });

  test('ARP is answered locally: no ARP request crosses the underlay', async () => {
    const [a, b] = pair.hosts;
    for (const c of [a.container, b.container]) await execInNetns(c, 'ip', ['neigh', 'flush', 'all']);
    // ARP inside VXLAN: the inner EtherType is 28 bytes into the UDP header (8 UDP + 8 VXLAN + 12).
    const cap = spawnInNetns(
      a.ns,
      'tcpdump',
      ['-n', '-l', '-i', 'ul0', 'arp or (udp and udp[28:2] = 0x0806)'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let seen = '';
    cap.stdout!.on('data', (d: Buffer) => {
      seen += d.toString();
    });
    try {
      await new Promise<void>((resolve) =>
        cap.stderr!.on('data', (d: Buffer) => d.toString().includes('listening') && resolve()),
      );
      const before = (await stats(tunnels[0]!)).counters.replies;
      await execInNetns(a.container, 'ping', ['-c', '1', '-W', '2', b.overlayIp]);
      const st = await stats(tunnels[0]!);
      assert.ok(st.counters.replies > before, 'the ARP proxy answered');
      const neigh = await execInNetns(a.container, 'ip', ['neigh', 'show', b.overlayIp]);
      assert.match(neigh, new RegExp(overlayMac(b.overlayIp)));
    } finally {
      cap.kill('SIGINT');
      await new Promise((r) => cap.once('close', r));
    }
    assert.equal(seen.trim(), '', `ARP crossed the underlay:\n${seen}`);
  });

  test('ping both ways', async () => {
    const [a, b] = pair.hosts;
    await execInNetns(a.container, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', b.overlayIp]);
    await execInNetns(b.container, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', a.overlayIp]);
  });

  test('MTU 1450: a 1450-byte packet with DF crosses, 1451 does not', async () => {
    const [a, b] = pair.hosts;
    await execInNetns(a.container, 'ping', ['-c', '2', '-M', 'do', '-s', '1422', '-W', '2', b.overlayIp]);
    await assert.rejects(
      execInNetns(a.container, 'ping', ['-c', '1', '-M', 'do', '-s', '1423', '-W', '2', b.overlayIp]),
    );
  });

  test('a 100 MB TCP transfer arrives intact (sha256)', async () => {
    const [a, b] = pair.hosts;
    await execInNetns(a.container, 'sh', ['-c', `head -c 104857600 /dev/urandom > ${file}`]);
    const sent = (await execInNetns(a.container, 'sha256sum', [file])).split(' ')[0];
    const server = spawnInNetns(
      b.container,
      'sh',
      ['-c', 'socat -u TCP-LISTEN:5001,reuseaddr - | sha256sum'],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let got = '';
    server.stdout!.on('data', (d: Buffer) => {
      got += d.toString();
    });
    const done = new Promise((r) => server.once('close', r));
    try {
      for (let i = 0; ; i++) {
        try {
          await execInNetns(a.container, 'socat', ['-u', `FILE:${file}`, `TCP:${b.overlayIp}:5001`], {
            timeoutMs: 60000,
          });
          break;
        } catch (e) {
          if (i === 20) throw e; // the listener may not be up yet
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      await done;
    } finally {
      server.kill();
    }
    assert.equal(got.split(' ')[0], sent);
  });

  test('SIGTERM removes the TAP, prints the counters and exits 0', async () => {
    const t = tunnels[1]!;
    const n = t.lines.length;
    t.child.kill('SIGTERM');
    assert.equal(await t.exited, 0);
    const last = JSON.parse(t.lines.at(-1)!);
    assert.ok(t.lines.length > n);
    assert.equal(last.vni, pair.vni);
    assert.ok(last.counters.rxPackets > 70000, `rxPackets ${last.counters.rxPackets}`);
    assert.equal(last.peers[0].addr, pair.hosts[0].underlayIp);
    const links = await ip(['-j', 'link', 'show'], { netns: pair.hosts[1].ns, action: 'list links' });
    assert.ok(!links.includes('"vx0"'), 'the TAP is gone');
  });
});
