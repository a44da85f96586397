// The two kernel seams of the datapath, as interfaces: what a Vtep needs from a TAP and from an
// underlay socket. TapDevice and UdpBind (and RawSender for sending) implement them against the
// kernel; src/io/fake.ts implements them in memory so datapath tests run without root.
// Both move whole batches: descriptors in WASM memory (assembly/constants.ts DESC_*), frames in
// the slots of a PacketBatch. Each seam has an fd that is readable while it has input, so the
// drivers in src/io/poller.ts work the same on real and fake seams.
import type { PacketBatch } from './batch.js';

export interface TapSeam {
  readonly fd: number;
  /** Frames carry a virtio_net_hdr in the VNET_HDR_LEN bytes before DESC_PTR. */
  readonly vnetHdr: boolean;
  /** Reads waiting frames into batch slots 0..; fills DESC_PTR/DESC_LEN; never blocks. */
  readBatch(batch: PacketBatch, max?: number): number;
  /** Writes the frames of descriptors [0, n) at address `descs`; returns how many were taken. */
  writeBatch(descs: number, n: number): number;
  /** Gather write: DESC_PTR = DESC_LEN (u32 address, u32 length) pairs written as one frame. */
  writeGather(descs: number, n: number): number;
  close(): void;
}

export interface UdpSeam {
  readonly fd: number;
  /** Receives waiting datagrams into batch slots 0..; fills DESC_PTR/LEN/ADDR(source)/AUX(GRO size). */
  recvBatch(batch: PacketBatch, max?: number): number;
  /** Sends descriptors [0, n) to the sockaddr at DESC_ADDR (DESC_AUX: GSO segment size or 0). */
  sendBatch(descs: number, n: number): number;
  /** Gather send: DESC_PTR = DESC_LEN (u32 address, u32 length) pairs concatenated into one datagram. */
  sendGather(descs: number, n: number): number;
  close(): void;
}
