// A packet capture for tests: tcpdump inside a test's namespace, writing a pcap file.

import type { ChildProcess } from 'node:child_process';
import { spawnInNetns } from '../src/kernel/netns.js';

export type Capture = Awaited<ReturnType<typeof capture>>;

/** tcpdump on `dev` in `ns` writing `file`; resolves once it listens; stop() ends it. */
export async function capture(ns: string, dev: string, file: string, filter: string) {
  const child: ChildProcess = spawnInNetns(
    ns,
    'tcpdump',
    ['-n', '-U', '--immediate-mode', '-s', '0', '-i', dev, '-w', file, filter],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('listening on')) resolve();
    });
    child.once('close', () => reject(new Error(`tcpdump: ${err}`)));
  });
  const closed = new Promise((r) => child.once('close', r));
  return {
    async stop() {
      child.kill('SIGINT');
      await closed;
    },
    kill: () => child.kill('SIGKILL'),
  };
}
