// VNI allocation: one unique 24-bit VXLAN network id per overlay network, kept in the store.
//
// Owns: which VNIs are taken, as keys `<prefix><vni>` -> owner (a network id). A VNI is taken by
// a transaction comparing its key absent, so concurrent creates on any number of hosts never get
// the same one; a lost race moves on to the next free candidate. The range starts at 4096, as
// libnetwork's, leaving low VNIs to hand-configured kernel VXLAN devices.

import { VxError } from '../errors.js';
import { type Plan, retryCas, type Store } from '../store/store.js';

export const VNI_FIRST = 4096;
export const VNI_LAST = 0xffffff;

export interface VniOptions {
  store: Store;
  /** Key prefix (default '/vxnet/vni/'). */
  prefix?: string;
  /** Narrower range, for tests (defaults 4096 and 16777215). */
  first?: number;
  last?: number;
}

export class VniAllocator {
  private readonly store: Store;
  private readonly prefix: string;
  private readonly first: number;
  private readonly last: number;

  constructor(options: VniOptions) {
    this.store = options.store;
    this.prefix = options.prefix ?? '/vxnet/vni/';
    this.first = options.first ?? VNI_FIRST;
    this.last = options.last ?? VNI_LAST;
    if (!isVni(this.first, VNI_FIRST, VNI_LAST) || !isVni(this.last, this.first, VNI_LAST)) {
      throw new VxError(
        'ERR_VNI_OUT_OF_RANGE',
        `options.first/last must satisfy ${VNI_FIRST} <= first <= last <= ${VNI_LAST}`,
      );
    }
  }

  /** Takes `vni` when given (a pinned `vxlanid`, checked), else the lowest free one. */
  async allocate(options: { owner: string; vni?: number | string }): Promise<number> {
    checkOwner(options?.owner);
    if (options.vni !== undefined) return this.pin(this.checkPinned(options.vni), options.owner);
    return retryCas(() => this.tryLowestFree(options.owner), { what: 'VNI allocation' });
  }

  /** The compares and ops that take a VNI; merge them into a larger transaction (transact). */
  async plan(options: { owner: string; vni?: number | string }): Promise<Plan<number>> {
    checkOwner(options?.owner);
    const vni =
      options.vni === undefined ? this.lowestFree(await this.used()) : this.checkPinned(options.vni);
    const key = this.prefix + vni;
    if (options.vni !== undefined && (await this.store.get(key))) throw inUse(vni);
    return {
      value: vni,
      compare: [{ key, absent: true }],
      success: [{ type: 'put', key, value: options.owner }],
    };
  }

  /** Frees a VNI. Can run twice. */
  async release(vni: number): Promise<void> {
    await this.store.delete(this.prefix + vni);
  }

  async list(): Promise<{ vni: number; owner: string }[]> {
    const { kvs } = await this.store.list(this.prefix);
    return kvs
      .map((kv) => ({ vni: Number(kv.key.slice(this.prefix.length)), owner: kv.value }))
      .sort((a, b) => a.vni - b.vni);
  }

  private checkPinned(vni: number | string): number {
    const n = typeof vni === 'string' && /^[0-9]+$/.test(vni) ? Number(vni) : vni;
    if (typeof n !== 'number' || !isVni(n, this.first, this.last)) {
      throw new VxError(
        'ERR_VNI_OUT_OF_RANGE',
        `vxlanid "${vni}" must be an integer from ${this.first} to ${this.last}`,
      );
    }
    return n;
  }

  private async pin(vni: number, owner: string): Promise<number> {
    const key = this.prefix + vni;
    const r = await this.store.txn({
      compare: [{ key, absent: true }],
      success: [{ type: 'put', key, value: owner }],
    });
    if (!r.succeeded) throw inUse(vni);
    return vni;
  }

  private async used(): Promise<Set<number>> {
    return new Set((await this.list()).map((e) => e.vni));
  }

  private lowestFree(used: Set<number>, after = this.first - 1): number {
    for (let vni = after + 1; vni <= this.last; vni++) if (!used.has(vni)) return vni;
    throw new VxError('ERR_VNI_EXHAUSTED', `no free VNI left in ${this.first}-${this.last}`);
  }

  private async tryLowestFree(owner: string): Promise<number | undefined> {
    const used = await this.used();
    let vni = this.first - 1;
    // A lost race moves on to the next candidate; after a few losses, re-read instead.
    for (let tried = 0; tried < 8; tried++) {
      vni = this.lowestFree(used, vni);
      const key = this.prefix + vni;
      const r = await this.store.txn({
        compare: [{ key, absent: true }],
        success: [{ type: 'put', key, value: owner }],
      });
      if (r.succeeded) return vni;
    }
    return undefined;
  }
}

function inUse(vni: number): VxError {
  return new VxError('ERR_VNI_IN_USE', `VNI ${vni} is already used by another network`);
}

function checkOwner(owner: unknown): void {
  if (typeof owner !== 'string' || !owner)
    throw new VxError('ERR_BAD_OWNER', 'options.owner must be a non-empty string');
}

function isVni(n: number, first: number, last: number): boolean {
  return Number.isInteger(n) && n >= first && n <= last;
}
