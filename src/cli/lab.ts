// `vxnet lab up|down|status`: simulated hosts on this machine (src/lab/lab.ts) for trying vxnet
// multi-host without several machines. `vxnet --host host2 ...` then talks to one host's daemon.
//
// Owns: presentation only; the lab's directory is /run/vxnet/lab unless $VXNET_LAB_DIR says
// otherwise (tests).

import { VxError } from '../errors.js';
import { type Command, FORMAT_FLAG, formatFlag, type Group, positionals, table } from './args.js';

const progress = (line: string) => console.error(`-- ${line}`);

const up: Command = {
  name: 'lab up',
  usage: '[--hosts N] [--subnet CIDR]',
  summary: 'Build N simulated hosts (namespaces on an underlay bridge), etcd, and a vxnet daemon on each',
  flags: {
    hosts: { type: 'string', arg: 'N', help: 'Number of hosts, 1-16 (default 2)' },
    subnet: { type: 'string', arg: 'CIDR', help: 'Underlay subnet (default 192.168.99.0/24)' },
    'vxlan-port': { type: 'string', arg: 'KIND', help: "The daemons' VXLAN port: tap (default) or kernel" },
  },
  async run(p) {
    positionals(p, this, []);
    const { labUp } = await import('../lab/lab.js');
    const raw = p.flags.hosts as string | undefined;
    if (raw !== undefined && !/^\d{1,3}$/.test(raw))
      throw new VxError('ERR_BAD_OPTION', `--hosts "${raw}" must be a number of hosts (1-16)`);
    const hosts = raw === undefined ? undefined : Number(raw);
    const kind = p.flags['vxlan-port'] as string | undefined;
    const lab = await labUp({
      hosts: hosts ?? 2,
      subnet: p.flags.subnet as string | undefined,
      daemonArgs: kind === undefined ? [] : ['--vxlan-port', kind],
      progress,
    });
    const s = lab.state;
    console.log(`lab up: ${s.hosts.length} hosts on ${s.subnet}, etcd at ${s.etcd.clusterStore}`);
    for (const h of s.hosts) console.log(`  ${h.name}  ${h.ip}  vxnet --host ${h.name} ...`);
    return 0;
  },
};

const down: Command = {
  name: 'lab down',
  usage: '',
  summary: 'Remove the lab: daemons, containers, namespaces, etcd, files',
  flags: {},
  async run(p) {
    positionals(p, this, []);
    const { labDown } = await import('../lab/lab.js');
    const r = await labDown({ progress });
    if (!r.found) console.log('no lab is up');
    else console.log(`lab down: removed ${r.namespaces.length} namespaces`);
    return 0;
  },
};

const status: Command = {
  name: 'lab status',
  usage: '[--format json]',
  summary: "Show the lab's hosts and whether their daemons and etcd answer",
  flags: { format: FORMAT_FLAG },
  async run(p) {
    positionals(p, this, []);
    const { labStatus } = await import('../lab/lab.js');
    const st = await labStatus();
    if (formatFlag(p) === 'json') {
      console.log(JSON.stringify(st, null, 2));
      return st.found ? 0 : 1;
    }
    if (!st.found || !st.state) {
      console.log("no lab is up (start one with 'vxnet lab up')");
      return 1;
    }
    const s = st.state;
    console.log(`lab ${s.status}, created ${s.created}, underlay ${s.subnet} (bridge in ${s.underlay.ns})`);
    console.log(`etcd ${st.etcd} at ${s.etcd.clusterStore} (namespace ${s.etcd.ns})\n`);
    console.log(
      table(
        ['HOST', 'NAMESPACE', 'UNDERLAY IP', 'DAEMON', 'CONTAINERS', 'SOCKET'],
        st.hosts.map((h) => [h.name, h.ns, h.ip, h.daemon, String(h.containers ?? '-'), h.socket]),
      ),
    );
    return st.hosts.every((h) => h.daemon === 'up') && st.etcd === 'up' ? 0 : 1;
  },
};

export const lab: Group = {
  name: 'lab',
  summary: 'Simulated hosts on this machine (namespaces, etcd, a daemon each)',
  commands: { up, down, status },
};
