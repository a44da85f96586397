// A dead host's endpoints and `network rm`: on a 2-host lab (real etcd, `--host-ttl 2`), host 2's
// daemon is killed with kill -9. While its lease lives, `network rm --force` and `network
// disconnect --force` leave its endpoints alone; once the lease expired, `network rm` is refused
// with ERR_NETWORK_IN_USE naming each endpoint and marking host 2 dead, `rm --force` removes a
// network that only host 2 used, and `disconnect --force` (the CLI) frees a network shared with a
// live host, whose own endpoint still refuses `rm --force` until it is disconnected. Host 2's
// daemon then starts again: its reconcile removes the force-removed endpoints' veths (and the
// sandbox of the network it no longer has), keeping its containers and their other endpoints.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Client } from '../src/cli/client.js';
import { isVxError, type VxError } from '../src/errors.js';
import { listLinks } from '../src/kernel/link.js';
import { netnsExists } from '../src/kernel/netns.js';
import { cliEntry, labDown, labUp, restartLabDaemon } from '../src/lab/lab.js';
import { root } from './daemon-host.js';

const skip = root ? false : 'needs root (network namespaces)';
const TTL = 2;

/** Runs the vxnet CLI against a socket; resolves exit code and output. */
function cli(socket: string, args: string[]): Promise<{ code: number; out: string }> {
  const entry = cliEntry();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...entry.args, '-H', `unix://${socket}`, ...args], {
      cwd: entry.cwd,
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('exit', (code) => resolve({ code: code ?? -1, out }));
  });
}

async function refused(p: Promise<unknown>, code: `ERR_${string}`): Promise<VxError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isVxError(e, code), `want ${code}, got ${String(e)}`);
    return e as VxError;
  }
  assert.fail(`want ${code}, the call succeeded`);
}

test("dead host: its endpoints block network rm until --force, never a live host's", {
  skip,
  timeout: 120_000,
}, async (t) => {
  const prefix = `dh${randomBytes(2).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'vxnet-deadhost-'));
  t.after(async () => {
    await labDown({ dir });
    rmSync(dir, { recursive: true, force: true });
  });
  const daemonArgs = ['--host-ttl', String(TTL)];
  const lab = await labUp({ hosts: 2, prefix, dir, daemonArgs });
  const [h1, h2] = lab.state.hosts;
  const [c1, c2] = [lab.client(h1!.name), lab.client(h2!.name)] as [Client, Client];
  const run = async (c: Client, name: string, net: string) => {
    await c.call('POST', `/containers/create?name=${name}`, {
      Cmd: ['sleep', '600'],
      HostConfig: { NetworkMode: net },
    });
    await c.call('POST', `/containers/${name}/start`);
  };
  await c1.call('POST', '/networks/create', {
    Name: 'shared',
    Internal: true,
    IPAM: { Config: [{ Subnet: '10.71.0.0/24' }] },
  });
  await c1.call('POST', '/networks/create', {
    Name: 'only2',
    Internal: true,
    IPAM: { Config: [{ Subnet: '10.72.0.0/24' }] },
  });
  await run(c1, 'x1', 'shared');
  await run(c2, 'x2', 'shared');
  await run(c2, 'y2', 'only2');
  await c2.call('POST', '/networks/shared/connect', { Container: 'y2' });
  const id = async (path: string) => (await c2.call<{ Id: string }>('GET', path)).Id;
  const sandbox = (netId: string) => `vxsb-${h2!.hostId}-${netId.slice(0, 12)}`;
  const ctNetns = (ctId: string) => `vxct-${h2!.hostId}-${ctId.slice(0, 12)}`;
  const [sharedSb, only2Sb] = [sandbox(await id('/networks/shared')), sandbox(await id('/networks/only2'))];
  const [x2ns, y2ns] = [ctNetns(await id('/containers/x2/json')), ctNetns(await id('/containers/y2/json'))];
  const veths = async (ns: string) =>
    (await listLinks({ netns: ns }))
      .filter((l) => l.kind === 'veth')
      .map((l) => l.name)
      .sort();
  assert.deepEqual(await veths(x2ns), ['eth0']);
  const y2links = await veths(y2ns);
  assert.equal(y2links.length, 2, 'y2 is on only2 (eth0) and shared');
  const y2shared = y2links.find((n) => n !== 'eth0')!;
  assert.equal((await veths(sharedSb)).length, 2, "x2's and y2's ports on shared's sandbox");

  process.kill(h2!.pid!, 'SIGKILL');
  // Within the TTL host 2 still counts as alive: --force touches none of its endpoints.
  const early = await refused(c1.call('DELETE', '/networks/only2?force=1'), 'ERR_NETWORK_IN_USE');
  assert.doesNotMatch(early.message, /dead/);
  await refused(
    c1.call('POST', '/networks/shared/disconnect', { Container: 'x2', Force: true }),
    'ERR_HOST_ALIVE',
  );
  const members = async () =>
    (await c1.call<{ Name: string; Containers: object }[]>('GET', '/networks')).length;
  assert.equal(await members(), 2);

  // Once the lease expired: refused without --force, naming the endpoints and the dead host.
  const deadline = Date.now() + (TTL + 5) * 1000;
  let msg = '';
  while (Date.now() < deadline) {
    msg = (await refused(c1.call('DELETE', '/networks/only2'), 'ERR_NETWORK_IN_USE')).message;
    if (/dead/.test(msg)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.match(msg, new RegExp(`y2 on ${h2!.hostId} \\(dead\\)`));
  assert.match(msg, /network rm --force/);
  const shared = (await refused(c1.call('DELETE', '/networks/shared'), 'ERR_NETWORK_IN_USE')).message;
  assert.match(shared, new RegExp(`x1 on ${h1!.hostId}(,|;|$)`), 'a live host is not marked dead');
  assert.match(shared, new RegExp(`x2 on ${h2!.hostId} \\(dead\\)`));

  // rm --force (CLI): only host 2 used it, so it goes.
  const rm = await cli(h1!.socket, ['network', 'rm', '--force', 'only2']);
  assert.equal(rm.code, 0, rm.out);
  await refused(c1.call('GET', '/networks/only2'), 'ERR_NETWORK_NOT_FOUND');

  // The shared network: --force refuses, removing nothing, while live host 1 has x1 on it.
  const forced = (await refused(c1.call('DELETE', '/networks/shared?force=1'), 'ERR_NETWORK_IN_USE')).message;
  assert.match(
    forced,
    new RegExp(`x2 on ${h2!.hostId} \\(dead\\)`),
    "the dead host's endpoint is still there",
  );
  const x1 = await c1.call<{ NetworkSettings: { Networks: Record<string, unknown> } }>(
    'GET',
    '/containers/x1/json',
  );
  assert.ok(x1.NetworkSettings.Networks.shared, 'the live host keeps its endpoint');
  // disconnect --force of the dead host's container (CLI), then x1 the ordinary way: rm works.
  const dis = await cli(h1!.socket, ['network', 'disconnect', '--force', 'shared', 'x2']);
  assert.equal(dis.code, 0, dis.out);
  const left = (await refused(c1.call('DELETE', '/networks/shared'), 'ERR_NETWORK_IN_USE')).message;
  assert.doesNotMatch(left, /x2/);

  // Host 2 comes back: the force-removed endpoints' plumbing goes, the rest stays.
  assert.ok(
    netnsExists(only2Sb) && (await veths(x2ns)).includes('eth0'),
    'left behind while host 2 was dead',
  );
  await restartLabDaemon(lab, h2!.name, daemonArgs);
  assert.deepEqual(await veths(x2ns), [], "x2's endpoint on shared was force-removed");
  assert.deepEqual(await veths(y2ns), [y2shared], "y2 keeps shared, not only2's eth0");
  assert.ok(!netnsExists(only2Sb), "only2's sandbox is gone");
  assert.equal((await veths(sharedSb)).length, 1, "only y2's port is left on shared's sandbox");
  for (const name of ['x2', 'y2']) {
    const ct = await c2.call<{ State: { Running: boolean } }>('GET', `/containers/${name}/json`);
    assert.ok(ct.State.Running, `${name} still runs`);
  }
  await c2.call('POST', '/networks/shared/disconnect', { Container: 'y2' });
  await c1.call('POST', '/networks/shared/disconnect', { Container: 'x1' });
  await c1.call('DELETE', '/networks/shared');
  assert.equal(await members(), 0);
});
