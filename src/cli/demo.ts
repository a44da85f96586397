// `vxnet demo`: the overlay driver's walkthrough (docker network create -d overlay; run web on
// one host; `wget -qO- http://web` from a container on another) replayed on a fresh lab of two
// simulated hosts, then the path the request took, then the lab removed.
//
// Owns: the script and its presentation. Everything goes through the same pieces a user would
// use: the lab (src/lab/lab.ts) and each host's daemon API (what `vxnet --host hostN ...` calls).
// The path is read back from the daemons, not assumed: the network's VNI and peers, both
// containers' addresses, which VXLAN port the daemons run (vxnet's TAP datapath by default, or
// the kernel's vxlan device), host2's forwarding entry for web's MAC (the tunnel endpoint its
// VXLAN port was programmed with from the store) and the port's own counters. The web server reports the address the request
// came from, so the page itself shows it crossed the overlay unchanged (no NAT on the way).
// The lab is removed at the end, on failure, and on Ctrl-C (building stops between steps).

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { VXLAN_PORT } from '../../assembly/constants.js';
import { VxError } from '../errors.js';
import type { Lab, LabState } from '../lab/lab.js';
import { type Command, positionals } from './args.js';
import type { Client } from './client.js';

const NETWORK = 'demo';
/** The TAP's name in a network's sandbox when the daemons run vxnet's datapath (tap-ports.ts). */
const TAP_DEV = 'vxtap0';
const STEPS = 6;

// The web server: node's http module, answering every request with the page it is given, which
// it completes with its own and the client's address as the sockets see them.
const SERVER = `
const http = require('node:http');
const page = process.argv[1];
http.createServer((req, res) => {
  const body = page.replace('{self}', req.socket.localAddress).replace('{peer}', req.socket.remoteAddress);
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end(body);
}).listen(80, '0.0.0.0', () => console.log('listening on :80'));
`;

// Fetches a URL and prints the body (when the machine has no wget).
const FETCH = `
fetch(process.argv[1], { signal: AbortSignal.timeout(10000) })
  .then(async (r) => { process.stdout.write(await r.text()); process.exit(r.ok ? 0 : 1); })
  .catch((e) => { console.error(String(e.cause ?? e)); process.exit(1); });
`;

function page(host: string): string {
  return `<!DOCTYPE html>
<html>
<head>
<title>Welcome to vxnet!</title>
</head>
<body>
<h1>Welcome to vxnet!</h1>
<p>This page was served by the container "web" on ${host}, at {self} on the overlay network "${NETWORK}".</p>
<p>Your request came from {peer}.</p>
</body>
</html>
`;
}

interface Endpoint {
  IPAddress: string;
  MacAddress: string;
}

interface ContainerJson {
  Name: string;
  Netns: string;
  State: { Status: string; ExitCode: number | null };
  NetworkSettings: { Networks: Record<string, Endpoint> };
}

interface NetworkJson {
  Id: string;
  VNI: number;
  MTU: number;
  IPAM: { Config: { Subnet: string; Gateway: string }[] };
  Peers: { Name: string; IP: string }[];
}

interface StatsRow {
  name: string;
  counters: Record<string, number>;
}

interface FdbRow {
  mac: string;
  vtep?: string;
  ip?: string;
}

export const demo: Command = {
  name: 'demo',
  usage: '[--keep]',
  summary: 'Replay the overlay walkthrough on a fresh 2-host lab: web on host1, wget http://web from host2',
  flags: {
    keep: { type: 'bool', help: "Leave the lab up afterwards (remove it with 'vxnet lab down')" },
  },
  async run(p) {
    positionals(p, this, []);
    const keep = p.flags.keep === true;
    const { labDown, labUp, readLabState } = await import('../lab/lab.js');
    if (readLabState())
      throw new VxError(
        'ERR_LAB_EXISTS',
        "the demo builds its own lab, but one is already up; run 'vxnet lab down' first",
      );
    const abort = new AbortController();
    let interrupted = false;
    const onSignal = () => {
      if (interrupted) return;
      interrupted = true;
      console.log('\n==> interrupted: cleaning up');
      abort.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    let lab: Lab | undefined;
    let ok = false;
    try {
      step(1, 'Building a lab of 2 simulated hosts: vxnet lab up --hosts 2');
      lab = await labUp({ hosts: 2, signal: abort.signal, progress: detail });
      const s = lab.state;
      for (const h of s.hosts) detail(`${h.name}: namespace ${h.ns}, underlay ${h.ip}, daemon ${h.socket}`);
      detail(`etcd: ${s.etcd.clusterStore} (namespace ${s.etcd.ns})`);
      const host1 = lab.client('host1');
      const host2 = lab.client('host2');
      check(abort);

      step(2, `host1: vxnet network create -d overlay ${NETWORK}`);
      await host1.call('POST', '/networks/create', { Name: NETWORK, Driver: 'overlay' });
      const net = await host2.call<NetworkJson>('GET', `/networks/${NETWORK}`);
      detail(
        `network ${NETWORK}: VNI ${net.VNI}, subnet ${net.IPAM.Config[0]?.Subnet}, ` +
          `seen from host2 through the cluster store`,
      );
      check(abort);

      step(3, `host1: vxnet run -d --net ${NETWORK} --name web -- <a web server on :80>`);
      await host1.call('POST', '/containers/create?name=web', {
        Cmd: [process.execPath, '-e', SERVER, page('host1')],
        HostConfig: { NetworkMode: NETWORK },
      });
      await host1.call('POST', '/containers/web/start');
      await waitListening(host1, abort);
      const web = await host1.call<ContainerJson>('GET', '/containers/web/json');
      const webEp = web.NetworkSettings.Networks[NETWORK]!;
      detail(`web: ${webEp.IPAddress} (${webEp.MacAddress}) on host1, listening on :80`);
      check(abort);

      const wget = existsSync('/usr/bin/wget');
      const fetchCmd = wget
        ? ['wget', '-qO-', '-T', '10', 'http://web']
        : [process.execPath, '-e', FETCH, 'http://web'];
      step(
        4,
        `host2: vxnet run --net ${NETWORK} --name client -- ${wget ? 'wget -qO- http://web' : 'node fetch http://web'}`,
      );
      await host2.call('POST', '/containers/create?name=client', {
        Cmd: fetchCmd,
        HostConfig: { NetworkMode: NETWORK },
      });
      await host2.call('POST', '/containers/client/start');
      const { StatusCode } = await host2.call<{ StatusCode: number | null }>(
        'POST',
        '/containers/client/wait',
      );
      const body = (await host2.call<string | undefined>('GET', '/containers/client/logs')) ?? '';
      process.stdout.write(body.endsWith('\n') ? body : `${body}\n`);
      if (StatusCode !== 0)
        throw new VxError('ERR_DEMO', `the client's fetch of http://web failed (exit ${StatusCode})`);
      check(abort);

      step(5, 'The path it took (as the daemons report it)');
      const client = await host2.call<ContainerJson>('GET', '/containers/client/json');
      const clientEp = client.NetworkSettings.Networks[NETWORK]!;
      const fdb2 = await host2.call<FdbRow[]>('GET', `/fdb?network=${NETWORK}`);
      const fdb1 = await host1.call<FdbRow[]>('GET', `/fdb?network=${NETWORK}`);
      const stats = await host2.call<StatsRow[]>('GET', '/stats');
      printPath({
        s,
        net: await host1.call<NetworkJson>('GET', `/networks/${NETWORK}`),
        web: webEp,
        client: clientEp,
        resolved: await resolveIn(client.Netns, 'web'),
        ...(await host2
          .call<{ ClusterAdvertise?: string; OverlayPorts?: string }>('GET', '/info')
          .then((i) => ({ local: i.ClusterAdvertise, ports: i.OverlayPorts }))),
        toWeb: fdb2.find((r) => r.mac === webEp.MacAddress),
        toClient: fdb1.find((r) => r.mac === clientEp.MacAddress),
        counters: stats.find((r) => r.name === NETWORK)?.counters,
      });
      ok = true;
    } catch (e) {
      if (!interrupted) throw e;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      if (keep && ok) {
        step(STEPS, 'Leaving the lab up (--keep)');
        detail(`try: vxnet --host host2 run --net ${NETWORK} -- wget -qO- http://web`);
        detail(`     vxnet --host host1 fdb show; vxnet lab status; vxnet lab down`);
      } else {
        step(STEPS, 'Cleaning up: vxnet lab down');
        const r = await labDown({ progress: detail });
        if (r.found) detail(`removed ${r.namespaces.length} namespaces, the daemons, etcd and their files`);
      }
    }
    if (interrupted) return 130;
    return 0;
  },
};

function step(n: number, what: string): void {
  console.log(`==> [${n}/${STEPS}] ${what}`);
}

function detail(line: string): void {
  console.log(`    ${line}`);
}

function check(abort: AbortController): void {
  if (abort.signal.aborted) throw new VxError('ERR_INTERRUPTED', 'the demo was interrupted');
}

async function waitListening(c: Client, abort: AbortController): Promise<void> {
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    check(abort);
    const logs = (await c.call<string | undefined>('GET', '/containers/web/logs')) ?? '';
    if (logs.includes('listening')) return;
    const ct = await c.call<ContainerJson>('GET', '/containers/web/json');
    if (ct.State.Status === 'exited')
      throw new VxError('ERR_DEMO', `the web server exited (${ct.State.ExitCode}): ${logs.trim()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new VxError('ERR_DEMO', 'the web server did not listen within 15 s');
}

/** What glibc in the container's namespace (its resolv.conf: 127.0.0.11) answers for `name`. */
function resolveIn(netns: string, name: string): Promise<string> {
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', netns, 'getent', 'ahostsv4', name], { timeout: 5000 }, (e, out) => {
      const ips = new Set(out.split('\n').map((l) => l.split(/\s+/)[0] ?? ''));
      ips.delete('');
      resolve(e ? 'not resolved' : [...ips].join(' '));
    });
  });
}

function printPath(x: {
  s: LabState;
  net: NetworkJson;
  web: Endpoint;
  client: Endpoint;
  resolved: string;
  local?: string;
  /** The daemons' VXLAN port implementation (/info OverlayPorts). */
  ports?: string;
  toWeb?: FdbRow;
  toClient?: FdbRow;
  counters?: Record<string, number>;
}): void {
  const line = (k: string, v: string) => detail(`${k.padEnd(10)} ${v}`);
  const remote = x.toWeb?.vtep ?? '?';
  const tap = x.ports === 'vxnet-tap';
  line('client', `host2  ${x.client.IPAddress}  ${x.client.MacAddress}`);
  line('web', `host1  ${x.web.IPAddress}  ${x.web.MacAddress}`);
  line('name', `"web" -> ${x.resolved}  (127.0.0.11: vxnet's resolver in the client's namespace)`);
  line('network', `${NETWORK}  VNI ${x.net.VNI}  subnet ${x.net.IPAM.Config[0]?.Subnet}  MTU ${x.net.MTU}`);
  line('tunnel', `${x.local ?? '?'} (host2) -> ${remote} (host1)  VXLAN VNI ${x.net.VNI}, UDP ${VXLAN_PORT}`);
  line(
    'port',
    tap ? `${TAP_DEV} in each sandbox, on br0: vxnet's TAP datapath (${x.ports})` : `${x.ports ?? '?'}`,
  );
  line('host2 FDB', x.toWeb ? `${x.toWeb.mac} -> vtep ${remote}` : `no entry for ${x.web.MacAddress}`);
  line(
    'host1 FDB',
    x.toClient
      ? `${x.toClient.mac} -> vtep ${x.toClient.vtep ?? '?'}`
      : `no entry for ${x.client.MacAddress}`,
  );
  line('peers', x.net.Peers.map((p) => `${p.Name} ${p.IP}`).join(', '));
  if (x.counters) {
    // The TAP datapath names its counters txPackets/rxPackets, the kernel port tx_packets/rx_packets.
    const c = x.counters;
    // Drops by reason: e.g. arpProxy (ARP answered locally, never sent), l2Miss (no FDB entry yet).
    const why = Object.entries(c)
      .filter(([k, v]) => k.startsWith('drops.') && v > 0)
      .map(([k, v]) => `${k.slice(6)} ${v}`);
    const dropped =
      c.dropped === undefined ? '' : `, ${c.dropped} dropped${why.length ? ` (${why.join(', ')})` : ''}`;
    line(
      'counters',
      `host2's VXLAN port on VNI ${x.net.VNI}: ${c.txPackets ?? c.tx_packets ?? 0} packets sent, ` +
        `${c.rxPackets ?? c.rx_packets ?? 0} received${dropped}`,
    );
  }
  detail('');
  if (tap) {
    detail(`client ${x.client.IPAddress} -> eth0 -> br0 [host2's sandbox for ${NETWORK}] -> ${TAP_DEV}`);
    detail(`  -> host2's daemon: vxnet datapath (FDB lookup, VXLAN encap in WASM on its I/O thread)`);
    detail(`  -> UDP ${x.local ?? '?'} -> ${remote}:${VXLAN_PORT} across the underlay ${x.s.subnet}`);
    detail(`  -> host1's daemon: vxnet datapath (VXLAN decap, VNI ${x.net.VNI}) -> ${TAP_DEV}`);
    detail(`  -> br0 [host1's sandbox] -> eth0 -> web ${x.web.IPAddress}:80`);
  } else {
    detail(`client ${x.client.IPAddress} -> eth0 -> br0 [host2's sandbox for ${NETWORK}] -> VXLAN port`);
    detail(`  -> UDP ${x.local ?? '?'} -> ${remote}:${VXLAN_PORT} across the underlay ${x.s.subnet}`);
    detail(`  -> VXLAN port -> br0 [host1's sandbox] -> eth0 -> web ${x.web.IPAddress}:80`);
  }
}
