// A TAP<->UDP copy forwarder (no VXLAN, no WASM pipeline) used by bench/io.ts to compare the I/O
// mechanisms. One `Host` is one side: frames read from its TAP go in one UDP datagram each to the
// other side's socket, datagrams received go into its TAP. In vnet-hdr mode the virtio_net_hdr
// travels in front of the frame, so TSO frames (up to 64 KB) cross as one datagram.
import {
  DESC_ADDR,
  DESC_AUX,
  DESC_LEN,
  DESC_PTR,
  DESC_SIZE,
  VNET_HDR_LEN,
} from '../../assembly/constants.js';
import { PacketBatch, type PacketBatchHandle } from '../../src/io/batch.js';
import type { Pump } from '../../src/io/poller.js';
import { TapDevice, type TapHandle } from '../../src/io/tap.js';
import { UdpBind, type UdpHandle } from '../../src/io/udp.js';

export interface HostHandle {
  tap: TapHandle;
  udp: UdpHandle;
  fromTap: PacketBatchHandle;
  fromUdp: PacketBatchHandle;
  /** Address of the peer's sockaddr in memory. */
  peer: number;
}

/** The two pumps of one host, over seams attached in this thread. */
export function hostPumps(h: HostHandle, memory: WebAssembly.Memory): Pump[] {
  const tap = TapDevice.attach(h.tap, memory);
  const udp = UdpBind.attach(h.udp, memory);
  const fromTap = PacketBatch.attach(h.fromTap, memory);
  const fromUdp = PacketBatch.attach(h.fromUdp, memory);
  const hdr = h.tap.vnetHdr ? VNET_HDR_LEN : 0;
  const u32 = () => new Uint32Array(memory.buffer);
  const view = u32();
  for (let i = 0; i < fromTap.capacity; i++) {
    view[(fromTap.desc(i) + DESC_ADDR) >>> 2] = h.peer;
    view[(fromTap.desc(i) + DESC_AUX) >>> 2] = 0;
  }
  return [
    {
      fd: tap.fd,
      pump() {
        const n = tap.readBatch(fromTap);
        if (n === 0) return 0;
        if (hdr) {
          const v = u32();
          for (let i = 0; i < n; i++) {
            const d = (fromTap.descs + i * DESC_SIZE) >>> 2;
            v[d + (DESC_PTR >> 2)]! -= hdr;
            v[d + (DESC_LEN >> 2)]! += hdr;
          }
        }
        udp.sendBatch(fromTap.descs, n);
        return n;
      },
    },
    {
      fd: udp.fd,
      pump() {
        const n = udp.recvBatch(fromUdp);
        if (n === 0) return 0;
        if (hdr) {
          const v = u32();
          for (let i = 0; i < n; i++) {
            const d = (fromUdp.descs + i * DESC_SIZE) >>> 2;
            v[d + (DESC_PTR >> 2)]! += hdr;
            v[d + (DESC_LEN >> 2)]! -= hdr;
          }
        }
        tap.writeBatch(fromUdp.descs, n);
        return n;
      },
    },
  ];
}
