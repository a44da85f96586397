// A batch of packet buffers in WASM linear memory: the unit every kernel seam reads into.
//
// Owns: one descriptor array (DESC_SIZE bytes per packet, layout in assembly/constants.ts), one slot
// per descriptor (HEADROOM + frame capacity + TAILROOM bytes, 64-byte aligned), and one 32-byte
// sockaddr buffer per descriptor (room for a sockaddr_in6). All three are carved out once with
// `core().alloc` and never freed. A seam's readBatch(batch) fills descriptor i from slot i:
// DESC_PTR = slot i + HEADROOM, DESC_LEN = bytes, and for UDP DESC_ADDR = sockaddr i (the source).
// What is read stays valid until the next read into the same batch, so one batch per direction.
import { DESC_SIZE, HEADROOM, TAILROOM } from '../../assembly/constants.js';
import { VxError } from '../errors.js';
import { core, type WasmCore } from '../wasm/module.js';

/** Bytes per sockaddr buffer (sockaddr_in6 is 28). */
export const ADDR_SLOT = 32;

export interface PacketBatchOptions {
  /** Descriptors and slots (default 64). */
  capacity?: number;
  /** Largest frame a slot holds, without HEADROOM/TAILROOM (default 2048; 65550 for TSO/GRO). */
  frameCapacity?: number;
  /** The WASM instance whose memory holds the batch (default: the main thread's `core()`). */
  wasm?: WasmCore;
}

/** What a worker needs to use a batch allocated by the main thread (structured-cloneable). */
export interface PacketBatchHandle {
  capacity: number;
  frameCapacity: number;
  slotSize: number;
  descs: number;
  slots: number;
  addrs: number;
}

export class PacketBatch {
  readonly capacity: number;
  readonly frameCapacity: number;
  readonly slotSize: number;
  /** Address of descriptor 0. */
  readonly descs: number;
  /** Address of slot 0 (its frame starts HEADROOM bytes later). */
  readonly slots: number;
  /** Address of sockaddr buffer 0. */
  readonly addrs: number;
  readonly memory: WebAssembly.Memory;

  /** The batch at `h` in `memory` (a worker's view of a batch the main thread allocated). */
  static attach(h: PacketBatchHandle, memory: WebAssembly.Memory): PacketBatch {
    const b = Object.create(PacketBatch.prototype) as PacketBatch;
    Object.assign(b, h, { memory });
    return b;
  }

  handle(): PacketBatchHandle {
    const { capacity, frameCapacity, slotSize, descs, slots, addrs } = this;
    return { capacity, frameCapacity, slotSize, descs, slots, addrs };
  }

  constructor(opts: PacketBatchOptions = {}) {
    const capacity = opts.capacity ?? 64;
    const frameCapacity = opts.frameCapacity ?? 2048;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1024) {
      throw new VxError('ERR_INVALID_ARG', `options.capacity must be an integer in 1..1024, got ${capacity}`);
    }
    if (!Number.isInteger(frameCapacity) || frameCapacity < 64 || frameCapacity > 262144) {
      throw new VxError(
        'ERR_INVALID_ARG',
        `options.frameCapacity must be an integer in 64..262144, got ${frameCapacity}`,
      );
    }
    const wasm = opts.wasm ?? core();
    this.capacity = capacity;
    this.frameCapacity = frameCapacity;
    this.slotSize = (HEADROOM + frameCapacity + TAILROOM + 63) & ~63;
    this.memory = wasm.memory;
    this.descs = wasm.alloc(capacity * DESC_SIZE);
    this.slots = wasm.alloc(capacity * this.slotSize);
    this.addrs = wasm.alloc(capacity * ADDR_SLOT);
  }

  /** Address of the first frame byte of slot i (slot start + HEADROOM). */
  frame(i: number): number {
    return this.slots + i * this.slotSize + HEADROOM;
  }

  /** Address of descriptor i. */
  desc(i: number): number {
    return this.descs + i * DESC_SIZE;
  }

  /** Address of sockaddr buffer i. */
  addr(i: number): number {
    return this.addrs + i * ADDR_SLOT;
  }
}
