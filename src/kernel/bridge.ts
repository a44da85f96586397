// Linux bridges: a network's `br0` in its sandbox, and the host's `vxnet_gwbridge`.
//
// Owns: ensuring a bridge exists with the right settings (idempotent: an existing bridge is
// adopted, an existing link of another kind is an error naming it), attaching and detaching
// ports, and port isolation (isolated ports cannot reach each other, only non-isolated ports and
// the bridge itself: how the gateway bridge keeps containers apart).

import { VxError } from '../errors.js';
import { checkIfName, ip, isExists, type Where } from './exec.js';
import { deleteLink, getLink, listLinks, setLink } from './link.js';

export interface BridgeOptions extends Where {
  mtu?: number;
  mac?: string;
  /** Bring it up (default true). */
  up?: boolean;
}

export async function ensureBridge(name: string, o: BridgeOptions = {}): Promise<void> {
  checkIfName(name);
  try {
    await ip(['link', 'add', name, 'type', 'bridge'], { netns: o.netns, action: `add bridge "${name}"` });
  } catch (e) {
    if (!isExists(e)) throw e;
    const existing = await getLink(name, o);
    if (existing?.kind !== 'bridge') {
      throw new VxError(
        'ERR_KERNEL',
        `link "${name}" exists and is not a bridge (it is ${existing?.kind ?? 'a plain device'})`,
      );
    }
  }
  await setLink(name, { netns: o.netns, mtu: o.mtu, mac: o.mac, up: o.up ?? true });
}

export interface PortOptions extends Where {
  /** Bring the port up (default true). */
  up?: boolean;
  /** Mark the port isolated: no traffic to other isolated ports of the bridge. */
  isolated?: boolean;
}

export async function attachPort(bridge: string, port: string, o: PortOptions = {}): Promise<void> {
  await setLink(port, { netns: o.netns, master: bridge });
  if (o.isolated !== undefined) {
    await ip(
      [
        'link',
        'set',
        'dev',
        checkIfName(port),
        'type',
        'bridge_slave',
        'isolated',
        o.isolated ? 'on' : 'off',
      ],
      {
        netns: o.netns,
        action: `set isolation of port "${port}" on bridge "${bridge}"`,
      },
    );
  }
  await setLink(port, { netns: o.netns, up: o.up ?? true });
}

export async function detachPort(port: string, o: Where = {}): Promise<void> {
  await setLink(port, { netns: o.netns, master: null });
}

export async function bridgePorts(bridge: string, o: Where = {}): Promise<string[]> {
  return (await listLinks({ netns: o.netns, master: bridge })).map((l) => l.name);
}

/** Deletes the bridge (its ports stay, detached). Can run twice. */
export async function deleteBridge(name: string, o: Where = {}): Promise<void> {
  await deleteLink(name, o);
}
