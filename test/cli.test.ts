// The `vxnet` command line as a user runs it (a separate process): --help on every command,
// option errors that name the option, the error code in the message with a non-zero exit,
// --format json on every listing, and the docker-like flow against a daemon on a simulated host.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ip } from '../src/kernel/exec.js';
import { netnsState } from '../src/kernel/netns.js';
import { createHost, root, type TestHost } from './daemon-host.js';

const skip = root ? false : 'needs root (network namespaces)';
let h: TestHost;

before(async () => {
  if (!root) return;
  h = await createHost();
  await h.start();
});

after(async () => {
  if (h) await h.destroy();
});

const COMMANDS = [
  ['daemon'],
  ['network'],
  ['network', 'create'],
  ['network', 'ls'],
  ['network', 'inspect'],
  ['network', 'rm'],
  ['network', 'connect'],
  ['network', 'disconnect'],
  ['run'],
  ['ps'],
  ['exec'],
  ['rm'],
  ['logs'],
  ['inspect'],
  ['attach'],
  ['detach'],
  ['fdb'],
  ['fdb', 'show'],
  ['peers'],
  ['stats'],
  ['info'],
];

test('--help on every command', { skip }, async () => {
  const top = await h.cli(['--help']);
  assert.equal(top.code, 0);
  for (const [c] of COMMANDS) assert.match(top.stdout, new RegExp(`^  ${c} `, 'm'));
  // Two at a time: the machine has two cores.
  for (let i = 0; i < COMMANDS.length; i += 2) {
    const batch = COMMANDS.slice(i, i + 2);
    const results = await Promise.all(batch.map((c) => h.cli([...c, '--help'])));
    for (const [j, r] of results.entries()) {
      assert.equal(r.code, 0, `${batch[j]!.join(' ')} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: vxnet ${batch[j]!.join(' ')}`), batch[j]!.join(' '));
    }
  }
});

test('option errors name the option; codes in the message; non-zero exits', { skip }, async () => {
  const cases: [string[], RegExp][] = [
    [
      ['network', 'create', '--bogus', 'x'],
      /^vxnet: ERR_UNKNOWN_OPTION: unknown option --bogus for 'vxnet network create'/,
    ],
    [['network', 'create', 'x', '--subnet'], /^vxnet: ERR_BAD_OPTION: --subnet needs a value/],
    [['network', 'create', '-d', 'bridge', 'x'], /^vxnet: ERR_BAD_DRIVER: --driver "bridge"/],
    [['network', 'create', '--subnet', '10.1.2.3/24', 'x'], /^vxnet: ERR_BAD_CIDR: /],
    [['network', 'create', '--opt', 'vxlanid=7', 'x'], /^vxnet: ERR_VNI_OUT_OF_RANGE: vxlanid "7" must be/],
    [['network', 'ls', '--format', 'yaml'], /^vxnet: ERR_BAD_OPTION: --format "yaml"/],
    [['run', '--name', 'x', '--', 'true'], /^vxnet: ERR_BAD_OPTION: --net NETWORK is required/],
    [['run', '--net', 'nope', '--name', 'x'], /^vxnet: ERR_BAD_COMMAND: /],
    [['run', '--net', 'nope', '--name', 'x', '--', 'true'], /^vxnet: ERR_NETWORK_NOT_FOUND: network "nope"/],
    [['network', 'rm', 'nope'], /^vxnet: ERR_NETWORK_NOT_FOUND: /],
    [['frobnicate'], /^vxnet: ERR_UNKNOWN_COMMAND: unknown command "frobnicate"/],
  ];
  for (let i = 0; i < cases.length; i += 2) {
    const batch = cases.slice(i, i + 2);
    const results = await Promise.all(batch.map(([args]) => h.cli(args)));
    for (const [j, r] of results.entries()) {
      assert.equal(r.code, 1, batch[j]![0].join(' '));
      assert.match(r.stderr, batch[j]![1]);
    }
  }
  const gone = await h.cli(['network', 'ls'], {});
  assert.equal(gone.code, 0);
  const unreachable = await h.cli(['-H', 'unix:///nonexistent/vxnet.sock', 'ps']);
  assert.equal(unreachable.code, 1);
  assert.match(unreachable.stderr, /^vxnet: ERR_DAEMON_UNREACHABLE: cannot connect/);
});

test('docker-like flow: network create/ls/inspect, run, ps, exec, attach, fdb, peers, stats, rm', {
  skip,
}, async () => {
  const ok = async (args: string[], env?: Record<string, string>) => {
    const r = await h.cli(args, env);
    assert.equal(r.code, 0, `vxnet ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const id = (
    await ok(['network', 'create', '-d', 'overlay', '--subnet', '10.77.7.0/24', '--label', 'k=v', 'web'])
  ).trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  const dup = await h.cli(['network', 'create', 'web']);
  assert.match(dup.stderr, /^vxnet: ERR_NAME_IN_USE: /);
  const ls = JSON.parse(await ok(['network', 'ls', '--format', 'json']));
  assert.deepEqual(
    ls.map((n: { Name: string }) => n.Name),
    ['web'],
  );
  assert.match(
    await ok(['network', 'ls']),
    /^NETWORK ID\s+NAME\s+DRIVER.*\n[0-9a-f]{12}\s+web\s+overlay\s+10\.77\.7\.0\/24/,
  );
  const [net] = JSON.parse(await ok(['network', 'inspect', 'web']));
  assert.equal(net.Id, id);
  assert.deepEqual(net.Labels, { k: 'v' });
  assert.match(
    (
      await ok(['run', '-d', '--net', 'web', '--name', 'srv', '--ip', '10.77.7.10', '--', 'sleep', '300'])
    ).trim(),
    /^[0-9a-f]{64}$/,
  );
  // Without -d: waits, prints the output, exits with the command's code (VXNET_HOST instead of -H).
  const fg = await h.cli([
    'run',
    '--net',
    'web',
    '--name',
    'cli',
    '--',
    'sh',
    '-c',
    'ping -c1 -W1 10.77.7.10 >/dev/null && echo reached; exit 3',
  ]);
  assert.equal(fg.code, 3, fg.stderr);
  assert.equal(fg.stdout, 'reached\n');
  const ps = JSON.parse(await ok(['ps', '--format', 'json']));
  assert.deepEqual(
    ps.map((c: { Name: string; State: { Status: string } }) => [c.Name, c.State.Status]),
    [
      ['srv', 'running'],
      ['cli', 'exited'],
    ],
  );
  assert.match(await ok(['ps']), /srv\s+running\s+web:10\.77\.7\.10\s+sleep 300/);
  assert.match(
    await ok(['exec', 'srv', '--', 'ip', '-4', '-br', 'addr', 'show', 'dev', 'eth0']),
    /10\.77\.7\.10\/24/,
  );
  const other = `vxdx-${h.tag}`;
  await ip(['netns', 'add', other], { action: 'add netns' });
  try {
    assert.equal(
      (await ok(['attach', '--net', 'web', '--ip', '10.77.7.20', other])).trim(),
      'eth0 10.77.7.20',
    );
    await ok(['detach', '--net', 'web', other]);
  } finally {
    await ip(['netns', 'delete', other], { action: 'delete netns' }).catch(() => undefined);
  }
  const fdb = JSON.parse(await ok(['fdb', 'show', '--net', 'web', '--format', 'json']));
  assert.ok(Array.isArray(fdb) && fdb.every((e: { vni: number }) => e.vni === net.VNI));
  assert.deepEqual(JSON.parse(await ok(['peers', '--format', 'json'])), []);
  const stats = JSON.parse(await ok(['stats', '--format', 'json']));
  assert.equal(stats[0].name, 'web');
  assert.equal(typeof stats[0].counters.txPackets, 'number', 'counters of the TAP datapath');
  const info = JSON.parse(await ok(['info', '--format', 'json'], { VXNET_HOST: `unix://${h.socket}` }));
  assert.equal(info.ID, h.hostId);
  assert.equal(info.OverlayMTU, 1450);
  const inUse = await h.cli(['network', 'rm', 'web']);
  assert.equal(inUse.code, 1);
  assert.match(inUse.stderr, /^vxnet: ERR_NETWORK_IN_USE: network "web" has active endpoints/);
  const running = await h.cli(['rm', 'srv']);
  assert.match(running.stderr, /^vxnet: ERR_CONTAINER_RUNNING: /);
  await ok(['rm', '-f', 'srv', 'cli']);
  await ok(['network', 'rm', 'web']);
  assert.deepEqual(await h.namespaces(), []);
});

test('`ip netns exec HOST vxnet daemon` works too: its namespaces are visible outside', {
  skip,
}, async () => {
  h.daemon!.kill('SIGTERM');
  assert.equal(await h.exited(), 0);
  await h.start({}, { launcher: 'ip-netns-exec' });
  await h.client.call('POST', '/networks/create', { Name: 'viaexec' });
  const r = await h.cli(['run', '-d', '--net', 'viaexec', '--name', 'v', '--', 'sleep', '60']);
  assert.equal(r.code, 0, r.stderr);
  const ns = (await h.namespaces()).find((n) => n.startsWith('vxct-'))!;
  assert.equal(netnsState(ns), 'live', 'mounted where this process sees it');
  assert.match(
    (await h.cli(['exec', 'v', '--', 'ip', '-br', 'link', 'show', 'dev', 'eth0'])).stdout,
    /^eth0@/,
  );
  await h.client.call('DELETE', '/containers/v?force=1');
  await h.client.call('DELETE', '/networks/viaexec');
  h.daemon!.kill('SIGTERM');
  assert.equal(await h.exited(), 0);
  assert.deepEqual(await h.namespaces(), []);
});
