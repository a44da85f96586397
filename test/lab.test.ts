// The lab (src/lab/lab.ts): N simulated hosts with a daemon each on one etcd, built and removed
// without leftovers, also after `labUp` is killed halfway. Each lab here has its own prefix and
// directory, so it runs next to other tests (and a user's `vxnet lab`).

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startTime } from '../src/daemon/procs.js';
import { isVxError } from '../src/errors.js';
import { listNetns } from '../src/kernel/netns.js';
import { type LabState, labDown, labUp, planLab } from '../src/lab/lab.js';
import { root } from './daemon-host.js';

const skip = root ? false : 'needs root (network namespaces)';

async function leftovers(s: LabState): Promise<string[]> {
  const all = [...(await listNetns()), ...(await listNetns({ stale: true }))];
  const names = [s.underlay.ns, s.etcd.ns, ...s.hosts.map((h) => h.ns)];
  return all.filter(
    (n) =>
      names.includes(n) ||
      s.hosts.some((h) => n.startsWith(`vxct-${h.hostId}-`) || n.startsWith(`vxsb-${h.hostId}-`)),
  );
}

const MAIN = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');

function cli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', MAIN, ...args],
      { env: { ...process.env, ...env }, timeout: 30000 },
      (e, stdout, stderr) => resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

function alive(pid?: number, start?: number): boolean {
  return pid !== undefined && start !== undefined && startTime(pid) === start;
}

test('lab: 2 hosts on one etcd share networks, a second up is refused, down leaves nothing', {
  skip,
}, async (t) => {
  const prefix = `lt${randomBytes(2).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'vxnet-lab-'));
  t.after(async () => {
    await labDown({ dir });
    rmSync(dir, { recursive: true, force: true });
  });
  const lab = await labUp({ hosts: 2, prefix, dir });
  const s = lab.state;
  assert.equal(s.status, 'up');
  assert.deepEqual(
    s.hosts.map((h) => [h.name, h.ns, h.ip]),
    [
      ['host1', `${prefix}-host1`, '192.168.99.11'],
      ['host2', `${prefix}-host2`, '192.168.99.12'],
    ],
  );
  for (const h of s.hosts) {
    const info = await lab.client(h.name).call<{ ID: string; Store: string }>('GET', '/info');
    assert.equal(info.ID, h.hostId);
    assert.equal(info.Store, 'etcd');
  }
  await lab.client('host1').call('POST', '/networks/create', { Name: 'shared' });
  const seen = await lab.client('host2').call<{ Name: string }[]>('GET', '/networks');
  assert.deepEqual(
    seen.map((n) => n.Name),
    ['shared'],
    'a network made on host1 is in the store host2 reads',
  );
  // A container on host1 leaves namespaces of the daemon's own for down to find.
  await lab.client('host1').call('POST', '/containers/create?name=c1', {
    Cmd: ['sleep', '60'],
    HostConfig: { NetworkMode: 'shared' },
  });
  await lab.client('host1').call('POST', '/containers/c1/start');
  await assert.rejects(labUp({ hosts: 2, prefix, dir }), (e) => isVxError(e, 'ERR_LAB_EXISTS'));
  // The CLI: --host NAME is that host's daemon; lab status; lab up again has its code.
  const env = { VXNET_LAB_DIR: dir, VXNET_LAB_PREFIX: prefix };
  const info = await cli(['--host', 'host2', 'info'], env);
  assert.equal(info.code, 0, info.stderr);
  assert.match(info.stdout, new RegExp(`^ID: ${prefix}host2$`, 'm'));
  const bad = await cli(['--host', 'host9', 'ps'], env);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /ERR_LAB_NOT_FOUND: the lab has no host "host9" \(it has host1, host2\)/);
  const st = await cli(['lab', 'status'], env);
  assert.equal(st.code, 0, st.stdout);
  assert.match(st.stdout, new RegExp(`^host1 +${prefix}-host1 +192\\.168\\.99\\.11 +up +1 `, 'm'));
  assert.match(st.stdout, /^etcd up at etcd:\/\/192\.168\.99\.2:2379/m);
  const again = await cli(['lab', 'up'], env);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /ERR_LAB_EXISTS/);
  const report = await labDown({ dir });
  assert.equal(report.found, true);
  assert.ok(
    report.namespaces.some((n) => n.startsWith(`vxct-${s.hosts[0]!.hostId}-`)),
    "the container's namespace went too",
  );
  assert.deepEqual(await leftovers(s), []);
  for (const h of s.hosts) assert.equal(alive(h.pid, h.pidStart), false, `${h.name}'s daemon is gone`);
  assert.equal(alive(s.etcd.pid, s.etcd.pidStart), false, 'etcd is gone');
  assert.equal(existsSync(dir), false, 'the lab directory is gone');
  assert.deepEqual(await labDown({ dir }), { found: false, namespaces: [], processes: [] }, 'down twice');
});

test('lab: down removes a lab whose up was killed halfway (etcd and some daemons started)', {
  skip,
}, async (t) => {
  const prefix = `lk${randomBytes(2).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'vxnet-lab-'));
  t.after(async () => {
    await labDown({ dir });
    rmSync(dir, { recursive: true, force: true });
  });
  const script = `import { labUp } from ${JSON.stringify(join(import.meta.dirname, '..', 'src', 'lab', 'lab.ts'))};
await labUp({ hosts: 3, prefix: ${JSON.stringify(prefix)}, dir: ${JSON.stringify(dir)} });`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: 'ignore',
  });
  const plan = planLab({ hosts: 3, prefix, dir });
  // Kill it once the state file records a started daemon.
  for (let i = 0; i < 400; i++) {
    try {
      const s = JSON.parse(readFileSync(join(dir, 'lab.json'), 'utf8')) as LabState;
      if (s.hosts.some((h) => h.pid !== undefined)) break;
    } catch {
      // Not written yet.
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  child.kill('SIGKILL');
  const s = JSON.parse(readFileSync(join(dir, 'lab.json'), 'utf8')) as LabState;
  assert.equal(s.status, 'building');
  assert.ok(alive(s.etcd.pid, s.etcd.pidStart), 'etcd outlived the killed lab up');
  assert.ok((await leftovers(plan)).length >= 5, 'its namespaces are there');
  const report = await labDown({ dir });
  assert.equal(report.found, true);
  assert.deepEqual(await leftovers(plan), []);
  assert.equal(alive(s.etcd.pid, s.etcd.pidStart), false);
  for (const h of s.hosts) assert.equal(alive(h.pid, h.pidStart), false);
  assert.equal(existsSync(dir), false);
});

test('lab: bad options have codes', () => {
  assert.throws(
    () => planLab({ hosts: 0 }),
    (e) => isVxError(e, 'ERR_BAD_OPTION'),
  );
  assert.throws(
    () => planLab({ hosts: 17 }),
    (e) => isVxError(e, 'ERR_BAD_OPTION'),
  );
  assert.throws(
    () => planLab({ subnet: '10.0.0.0/30' }),
    (e) => isVxError(e, 'ERR_BAD_CIDR'),
  );
  assert.throws(
    () => planLab({ subnet: '10.0.0.1/24' }),
    (e) => isVxError(e, 'ERR_BAD_CIDR'),
  );
  assert.throws(
    () => planLab({ prefix: 'Bad-' }),
    (e) => isVxError(e, 'ERR_BAD_OPTION'),
  );
  assert.equal(planLab({ hosts: 3, subnet: '10.9.0.0/16' }).hosts[2]!.ip, '10.9.0.13');
});
