// The raw underlay sender: datagrams whose outer IPv4 (or IPv6) and UDP headers were built in WASM
// go out exactly as built, so each flow can have its own UDP source port (RFC 7348 entropy, as
// Linux's vxlan does) and the WASM core owns the checksums.
//
// Owns: one socket(AF_INET, SOCK_RAW, IPPROTO_RAW) (IP_HDRINCL is implied; for AF_INET6,
// IPPROTO_RAW implies IPV6_HDRINCL) and its sendmmsg batches, which reuse UdpBind's send path:
// DESC_PTR points at the outer IP header, DESC_LEN covers the whole packet, DESC_ADDR is the
// peer's sockaddr (the kernel routes on its address; the port is ignored). There is no UDP GSO
// on a raw socket, so DESC_AUX is ignored: one datagram per message. Receiving stays on the
// UdpBind bound to the data-path port (the kernel delivers VXLAN to it).
// openProto is the other use: a raw socket of one IP protocol (50, ESP) both ways, for ESP in IP
// without kernel IPsec. It is a UdpBind too, so the I/O thread reads it like the UDP socket:
// epoll readiness (src/io/poller.ts), then recvmmsg batches straight into WASM memory, never a
// libuv threadpool read. The kernel hands every protocol-50 packet of the namespace to it (ESP of
// unknown SPIs is dropped and counted by the ESP stage) and still runs its own handler after.
// Why koffi and not the `raw-socket` package: raw-socket can send from a Buffer over WASM memory
// without a copy, but it sends one packet per libuv poll wake-up with a per-packet request object
// and a text address; bench/io.ts (`raw-send`) measures both.
import { VxError } from '../errors.js';
import {
  AF_INET,
  AF_INET6,
  IPPROTO_RAW,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_SNDBUF,
  SO_SNDBUFFORCE,
  SOCK_CLOEXEC,
  SOCK_RAW,
  SOL_SOCKET,
  sys,
  sysError,
} from './libc.js';
import { UdpBind, type UdpHandle, type UdpStats } from './udp.js';

export interface RawOptions {
  /** 4 (default) or 6. */
  family?: 4 | 6;
  /** Largest number of packets per sendmmsg (default 64). */
  batch?: number;
  /** SO_SNDBUF in bytes. */
  sndbuf?: number;
  memory?: WebAssembly.Memory;
  alloc?: (size: number) => number;
}

export class RawSender {
  private constructor(private readonly tx: UdpBind) {}

  static open(opts: RawOptions = {}): RawSender {
    const family = opts.family ?? 4;
    if (family !== 4 && family !== 6) {
      throw new VxError('ERR_INVALID_ARG', `options.family must be 4 or 6, got ${family}`);
    }
    const fd = sys.socket(family === 4 ? AF_INET : AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    if (fd < 0) throw sysError('ERR_RAW_SOCKET', `cannot open a raw IPv${family} socket`);
    try {
      if (opts.sndbuf) {
        const b = Buffer.alloc(4);
        b.writeInt32LE(opts.sndbuf);
        if (sys.setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, b, 4) < 0)
          sys.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, b, 4);
      }
      return new RawSender(UdpBind.adopt(fd, family, { ...opts, gso: false }));
    } catch (e) {
      sys.close(fd);
      throw e;
    }
  }

  get fd(): number {
    return this.tx.fd;
  }

  get stats(): UdpStats {
    return this.tx.stats;
  }

  /** A worker's sender: UdpBind.attach(handle) sends on this socket (gso off). */
  handle(): UdpHandle {
    return this.tx.handle();
  }

  /**
   * A raw IPv4 socket of IP protocol `proto` (e.g. 50, ESP) whose packets the kernel gives their IP
   * header: send takes the payload (no GSO), receive (recvBatch on the adopted UdpBind) yields each
   * packet with its IPv4 header in front. For ESP in IP (RFC 4303) without kernel IPsec.
   */
  static openProto(proto: number, opts: Omit<RawOptions, 'family'> & { rcvbuf?: number } = {}): UdpBind {
    const fd = sys.socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, proto);
    if (fd < 0) throw sysError('ERR_RAW_SOCKET', `cannot open a raw socket for IP protocol ${proto}`);
    try {
      const b = Buffer.alloc(4);
      for (const [size, force, plain] of [
        [opts.sndbuf, SO_SNDBUFFORCE, SO_SNDBUF],
        [opts.rcvbuf, SO_RCVBUFFORCE, SO_RCVBUF],
      ] as const) {
        if (!size) continue;
        b.writeInt32LE(size);
        if (sys.setsockopt(fd, SOL_SOCKET, force, b, 4) < 0) sys.setsockopt(fd, SOL_SOCKET, plain, b, 4);
      }
      return UdpBind.adopt(fd, 4, { ...opts, gso: false });
    } catch (e) {
      sys.close(fd);
      throw e;
    }
  }

  /** Sends descriptors [0, n) at `descs` as complete IP packets; returns how many the kernel took. */
  sendBatch(descs: number, n: number): number {
    return this.tx.sendBatch(descs, n);
  }

  close(): void {
    this.tx.close();
  }
}
