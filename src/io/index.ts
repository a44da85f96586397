// vxnet's kernel I/O seams: the TAP device, the UDP underlay, the raw underlay sender, their
// in-memory fakes and the drivers that run them. See each module's design note; bench/io.ts has
// the measurements behind the choices (I/O worker + IFF_VNET_HDR/TSO + UDP GSO/GRO).
export { PacketBatch, type PacketBatchHandle, type PacketBatchOptions } from './batch.js';
export { FakeTap, FakeUdp, FakeUnderlay } from './fake.js';
export { memBase } from './libc.js';
export { MemView } from './memview.js';
export {
  type BlockingOptions,
  type DriverOptions,
  EpollSet,
  EventLoopDriver,
  type Pump,
  runBlocking,
  Waker,
} from './poller.js';
export { type RawOptions, RawSender } from './raw.js';
export type { TapSeam, UdpSeam } from './seams.js';
export { readSockaddr, type SockAddr, writeSockaddr } from './sockaddr.js';
export {
  TapDevice,
  type TapHandle,
  type TapOptions,
  TSO_MAX_FRAME,
  TUN_F_CSUM,
  TUN_F_DEFAULT,
  TUN_F_TSO4,
  TUN_F_TSO6,
} from './tap.js';
export { expandGro, GATHER_IOVS, UdpBind, type UdpHandle, type UdpOptions } from './udp.js';
export { type IoContext, type IoService, IoWorker, type IoWorkerOptions, serveIo } from './worker.js';
