// What this host's datapath was last given, kept in the state dir, so a daemon started while the
// cluster store is down can bring its VXLAN ports back from local state.
//
// Owns: `<stateDir>/datapath.json`: per network with a sandbox here, the port spec (VNI, sandbox,
// MTU, encrypted) and the remote endpoints last applied (peers.ts). Written after changes (at
// most once a second, and on close), read only at a start whose store does not answer.
// Why shaped so: the store is the source of truth; this file is only what the datapath had, to
// forward on until the store answers (the same "last known state" a running daemon keeps while
// etcd is away). The normal start (reconcile, peer table) then replaces all of it.

import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { netnsExists } from '../kernel/netns.js';
import type { OverlayPorts, PortRef, PortSpec, RemoteEndpoint } from './ports.js';

interface Entry {
  spec: PortSpec;
  remotes: RemoteEndpoint[];
}

export class DatapathCache {
  private entries = new Map<string, Entry>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {
    try {
      const rows = JSON.parse(readFileSync(file, 'utf8')) as Entry[];
      for (const e of rows) if (e?.spec?.network) this.entries.set(e.spec.network, e);
    } catch {
      // None yet, or unreadable: nothing to bring up from.
    }
  }

  /** The network's port as the daemon would make it now. */
  spec(spec: PortSpec): void {
    const e = this.entries.get(spec.network);
    if (e && JSON.stringify(e.spec) === JSON.stringify(spec)) return;
    this.entries.set(spec.network, { spec, remotes: e?.remotes ?? [] });
    this.save();
  }

  /** The remote table just applied to the network's port. */
  applied(ref: PortRef, remotes: RemoteEndpoint[]): void {
    const e = this.entries.get(ref.network);
    if (!e) return;
    e.remotes = remotes;
    this.save();
  }

  /** The network has no sandbox here any more. */
  drop(networkId: string): void {
    if (this.entries.delete(networkId)) this.save();
  }

  /** Makes the ports of the cached networks whose sandbox still exists, with their last tables. */
  async restore(ports: OverlayPorts): Promise<number> {
    let n = 0;
    for (const { spec, remotes } of this.entries.values()) {
      if (!netnsExists(spec.sandbox)) continue;
      try {
        await ports.ensure(spec);
        await ports.setRemotes(spec, remotes);
        n++;
      } catch (e) {
        this.log.warn({ err: e, network: spec.network }, 'could not bring the port up from local state');
      }
    }
    return n;
  }

  /** Writes pending changes now. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    try {
      const tmp = `${this.file}.tmp`;
      writeFileSync(tmp, JSON.stringify([...this.entries.values()]), { mode: 0o600 });
      renameSync(tmp, this.file);
    } catch (e) {
      this.log.warn({ err: e }, 'could not write the datapath cache');
    }
  }

  private save(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => this.flush(), 1000);
    this.timer.unref();
  }
}
