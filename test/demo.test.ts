// `vxnet demo` end to end, as a user runs it: a 2-host lab, web on host1, `wget http://web` from
// host2, the page and the path printed, and nothing left behind afterwards - also when it is
// interrupted with Ctrl-C. Each run gets its own lab directory and namespace prefix
// (VXNET_LAB_DIR, VXNET_LAB_PREFIX) so it never meets a user's lab or another test's.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { listNetns } from '../src/kernel/netns.js';
import { labDown } from '../src/lab/lab.js';
import { root } from './daemon-host.js';

const skip = root ? false : 'needs root (network namespaces)';
const MAIN = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

function demo(env: Record<string, string>, onLine?: (line: string, kill: () => void) => void): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'demo'], {
      env: { ...process.env, ...env },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      for (const l of d.toString().split('\n')) onLine?.(l, () => child.kill('SIGINT'));
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('exit', (code, signal) => resolve({ code, signal, out, err }));
  });
}

/** Namespaces and live processes of the lab named by `prefix` / living in `dir`. */
async function leftovers(prefix: string, dir: string): Promise<string[]> {
  const all = [...(await listNetns()), ...(await listNetns({ stale: true }))];
  const ns = all.filter((n) => n.startsWith(`${prefix}-`) || n.includes(`-${prefix}host`));
  const procs: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes(dir)) procs.push(`${pid}: ${cmd.replaceAll('\0', ' ')}`);
    } catch {
      // Gone meanwhile.
    }
  }
  return [...ns, ...procs, ...(existsSync(dir) ? [dir] : [])];
}

function setup(t: { after(f: () => Promise<void>): void }) {
  const prefix = `dm${randomBytes(2).toString('hex')}`;
  const dir = join(mkdtempSync(join(tmpdir(), 'vxnet-demo-')), 'lab');
  t.after(async () => {
    await labDown({ dir });
    rmSync(join(dir, '..'), { recursive: true, force: true });
  });
  return { prefix, dir, env: { VXNET_LAB_DIR: dir, VXNET_LAB_PREFIX: prefix } };
}

test('vxnet demo: web on host1 fetched by name from host2, the path printed, nothing left', {
  skip,
}, async (t) => {
  const { prefix, dir, env } = setup(t);
  const r = await demo(env);
  assert.equal(r.code, 0, `demo failed:\n${r.out}\n${r.err}`);
  const steps = [...r.out.matchAll(/^==> \[(\d)\/6\]/gm)].map((m) => Number(m[1]));
  assert.deepEqual(steps, [1, 2, 3, 4, 5, 6], 'progress through every step, in order');
  const field = (name: string) => {
    const m = new RegExp(`^    ${name} +(.*)$`, 'm').exec(r.out);
    assert.ok(m, `a "${name}" line:\n${r.out}`);
    return m[1]!;
  };
  const [clientHost, clientIp, clientMac] = field('client').split(/\s+/);
  const [webHost, webIp, webMac] = field('web').split(/\s+/);
  assert.equal(clientHost, 'host2');
  assert.equal(webHost, 'host1');
  const mac = (ip: string) =>
    `02:42:${ip
      .split('.')
      .map((b) => Number(b).toString(16).padStart(2, '0'))
      .join(':')}`;
  assert.equal(webMac, mac(webIp!));
  assert.equal(clientMac, mac(clientIp!));
  // The page, as wget printed it: served by web, and it saw the client's overlay address.
  assert.match(r.out, /<h1>Welcome to vxnet!<\/h1>/);
  assert.ok(
    r.out.includes(`served by the container "web" on host1, at ${webIp} on the overlay network "demo"`),
    r.out,
  );
  assert.ok(r.out.includes(`Your request came from ${clientIp}.`), 'no NAT between the containers');
  // The path: name resolution, VNI, tunnel endpoints from both hosts' FDBs.
  assert.match(field('name'), new RegExp(`^"web" -> ${webIp!.replaceAll('.', '\\.')} `));
  const vni = /VNI (\d+)/.exec(field('network'))![1]!;
  assert.ok(Number(vni) >= 4096);
  assert.equal(field('tunnel'), `192.168.99.12 (host2) -> 192.168.99.11 (host1)  VXLAN VNI ${vni}, UDP 4789`);
  assert.equal(field('host2 FDB'), `${webMac} -> vtep 192.168.99.11`);
  assert.equal(field('host1 FDB'), `${clientMac} -> vtep 192.168.99.12`);
  // On vxnet's own datapath (the daemons' default VXLAN port), which counted the request's packets.
  assert.equal(field('port'), "vxtap0 in each sandbox, on br0: vxnet's TAP datapath (vxnet-tap)");
  assert.match(
    field('counters'),
    /: [1-9]\d* packets sent, [1-9]\d* received, \d+ dropped( \((\w+ \d+(, )?)+\))?$/,
  );
  assert.match(r.out, /-> host2's daemon: vxnet datapath \(FDB lookup, VXLAN encap/);
  assert.deepEqual(await leftovers(prefix, dir), [], 'no namespace, process or file left');
});

test('vxnet demo: Ctrl-C while it runs removes the lab', { skip }, async (t) => {
  const { prefix, dir, env } = setup(t);
  let sent = false;
  const r = await demo(env, (line, kill) => {
    // Interrupt once the daemons are being started (mid lab up).
    if (!sent && line.includes('starting 2 vxnet daemons')) {
      sent = true;
      kill();
    }
  });
  assert.ok(sent, r.out);
  assert.equal(r.code, 130, `${r.out}\n${r.err}`);
  assert.match(r.out, /interrupted: cleaning up/);
  assert.doesNotMatch(r.out, /\[2\/6\]/, 'it stopped building');
  assert.deepEqual(await leftovers(prefix, dir), []);
});

test('vxnet demo: a daemon dying mid-demo fails it with a code, and the lab still goes', {
  skip,
}, async (t) => {
  const { prefix, dir, env } = setup(t);
  // The daemons inherit the environment: host1's kills itself (-9) right after starting web.
  const r = await demo({ ...env, VXNET_CRASH_AT: 'run:spawned' });
  assert.equal(r.code, 1, `${r.out}\n${r.err}`);
  assert.match(r.err, /vxnet: ERR_DAEMON_UNREACHABLE: /);
  assert.match(r.out, /==> \[3\/6\][\s\S]*==> \[6\/6\] Cleaning up/);
  assert.deepEqual(await leftovers(prefix, dir), [], "web's namespace and process went with the lab");
});
