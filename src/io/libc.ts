// The libc calls vxnet's kernel seams make, bound once through koffi.
//
// Owns: the FFI declarations, the Linux constants and struct layouts they need (x86_64/aarch64
// LP64), and the mapping of a failed call to a VxError. Every pointer that points into WASM linear
// memory is passed as a plain integer (`uintptr_t`): the absolute address is `memBase() + offset`.
// Measured on this machine: an integer-pointer call costs about 0.26 us, a typed-array argument
// about 0.40 us, so the hot calls (read/write/readv/recvmmsg/sendmmsg/epoll_wait) take integers.
// A shared WebAssembly.Memory never moves (its maximum is reserved up front), so the base address
// is resolved once per thread. Setup-only calls (ioctl on an ifreq, setsockopt) take Buffers.
import koffi from 'koffi';
import { VxError, type VxErrorCode } from '../errors.js';

const lib = koffi.load('libc.so.6');

// ---- Declarations ------------------------------------------------------------------------------
// Fixed-signature variants of the variadic open/ioctl: integer and pointer arguments are passed the
// same way for variadic and fixed calls on the LP64 Linux ABIs, and koffi's variadic path is slower.
export const sys = {
  open: lib.func('int open(const char *path, int flags, int mode)'),
  close: lib.func('int close(int fd)'),
  read: lib.func('intptr_t read(int fd, uintptr_t buf, size_t n)'),
  write: lib.func('intptr_t write(int fd, uintptr_t buf, size_t n)'),
  readv: lib.func('intptr_t readv(int fd, uintptr_t iov, int iovcnt)'),
  writev: lib.func('intptr_t writev(int fd, uintptr_t iov, int iovcnt)'),
  ioctlPtr: lib.func('int ioctl(int fd, unsigned long req, void *arg)'),
  ioctlInt: lib.func('int ioctl(int fd, unsigned long req, unsigned long arg)'),
  socket: lib.func('int socket(int domain, int type, int protocol)'),
  bind: lib.func('int bind(int fd, void *addr, uint32_t len)'),
  getsockname: lib.func('int getsockname(int fd, void *addr, _Inout_ uint32_t *len)'),
  setsockopt: lib.func('int setsockopt(int fd, int level, int name, void *val, uint32_t len)'),
  getsockopt: lib.func('int getsockopt(int fd, int level, int name, void *val, _Inout_ uint32_t *len)'),
  recvmmsg: lib.func('int recvmmsg(int fd, uintptr_t vec, unsigned int vlen, int flags, uintptr_t timeout)'),
  sendmmsg: lib.func('int sendmmsg(int fd, uintptr_t vec, unsigned int vlen, int flags)'),
  sendmsg: lib.func('intptr_t sendmsg(int fd, uintptr_t msg, int flags)'),
  sendto: lib.func(
    'intptr_t sendto(int fd, uintptr_t buf, size_t n, int flags, uintptr_t addr, uint32_t alen)',
  ),
  epollCreate1: lib.func('int epoll_create1(int flags)'),
  epollCtl: lib.func('int epoll_ctl(int epfd, int op, int fd, void *event)'),
  epollWait: lib.func('int epoll_wait(int epfd, uintptr_t events, int max, int timeout)'),
  epollWaitBuf: lib.func('int epoll_wait(int epfd, _Out_ uint8_t *events, int max, int timeout)'),
  readBuf: lib.func('intptr_t read(int fd, _Out_ uint8_t *buf, size_t n)'),
  writeBuf: lib.func('intptr_t write(int fd, uint8_t *buf, size_t n)'),
  writevBuf: lib.func('intptr_t writev(int fd, uint8_t *iov, int iovcnt)'),
  poll: lib.func('int poll(uintptr_t fds, unsigned long nfds, int timeout)'),
  eventfd: lib.func('int eventfd(unsigned int initval, int flags)'),
  fcntl: lib.func('int fcntl(int fd, int cmd, int arg)'),
  memmove: lib.func('void *memmove(void *dst, void *src, size_t n)'),
};

/** errno of the last failed call on this thread (koffi saves it right after each call). */
export function errno(): number {
  return koffi.errno();
}

// ---- Constants (Linux, generic and x86_64/aarch64) -----------------------------------------------
export const O_RDWR = 0o2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const F_GETFL = 3;
export const F_SETFL = 4;

export const EINTR = 4;
export const EAGAIN = 11;
export const EBUSY = 16;
export const EEXIST = 17;
export const EINVAL = 22;
export const ENOPROTOOPT = 92;
export const EADDRINUSE = 98;

export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const IPPROTO_IP = 0;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_UDP = 17;
export const IPPROTO_RAW = 255;
export const SOL_SOCKET = 1;
export const SOL_UDP = 17;
export const SO_REUSEADDR = 2;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;
export const IP_HDRINCL = 3;
export const IPV6_V6ONLY = 26;
export const UDP_SEGMENT = 103;
export const UDP_GRO = 104;
export const MSG_DONTWAIT = 0x40;
export const MSG_TRUNC = 0x20;

export const SOCKADDR_IN_LEN = 16;
export const SOCKADDR_IN6_LEN = 28;

// struct msghdr / mmsghdr / iovec / cmsghdr on LP64.
export const IOVEC_SIZE = 16;
/** UIO_MAXIOV: most iovecs one readv/writev/sendmsg takes. */
export const IOV_MAX = 1024;
export const MSG_NAME = 0;
export const MSG_NAMELEN = 8;
export const MSG_IOV = 16;
export const MSG_IOVLEN = 24;
export const MSG_CONTROL = 32;
export const MSG_CONTROLLEN = 40;
export const MSG_FLAGS = 48;
export const MMSG_LEN = 56;
export const MMSGHDR_SIZE = 64;
export const CMSG_HDR = 16; // cmsg_len (size_t), cmsg_level (int), cmsg_type (int)
/** CMSG_SPACE(sizeof(int)): room for one UDP_SEGMENT (u16) or UDP_GRO (int) control message. */
export const CMSG_SPACE_INT = 24;

export const EPOLLIN = 0x1;
export const EPOLLOUT = 0x4;
export const EPOLLERR = 0x8;
export const EPOLLET = 0x80000000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
/** struct epoll_event is packed on x86_64 (12 bytes) and naturally aligned elsewhere (16 bytes). */
export const EPOLL_EVENT_SIZE = process.arch === 'x64' ? 12 : 16;
export const EPOLL_EVENT_DATA = process.arch === 'x64' ? 4 : 8;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;

// ---- Addresses of WASM memory ------------------------------------------------------------------
const bases = new WeakMap<WebAssembly.Memory, number>();

/** The absolute address of byte 0 of a shared WebAssembly.Memory (stable: shared memory never moves). */
export function memBase(memory: WebAssembly.Memory): number {
  let b = bases.get(memory);
  if (b === undefined) {
    const view = new Uint8Array(memory.buffer, 0, 1);
    b = Number(koffi.address(sys.memmove(view, view, 0)));
    bases.set(memory, b);
  }
  return b;
}

/** Writes a 64-bit pointer/size (< 2^53) as two little-endian u32 at a u32 index. */
export function put64(u32: Uint32Array, index: number, value: number): void {
  u32[index] = value >>> 0;
  u32[index + 1] = (value / 4294967296) >>> 0;
}

// ---- Errors --------------------------------------------------------------------------------------
const names: Record<number, string> = {
  1: 'EPERM',
  2: 'ENOENT',
  9: 'EBADF',
  11: 'EAGAIN',
  13: 'EACCES',
  16: 'EBUSY',
  17: 'EEXIST',
  19: 'ENODEV',
  22: 'EINVAL',
  24: 'EMFILE',
  90: 'EMSGSIZE',
  92: 'ENOPROTOOPT',
  93: 'EPROTONOSUPPORT',
  97: 'EAFNOSUPPORT',
  98: 'EADDRINUSE',
  99: 'EADDRNOTAVAIL',
  101: 'ENETUNREACH',
  111: 'ECONNREFUSED',
};

export function errnoName(e: number): string {
  return names[e] ?? `errno ${e}`;
}

/** A VxError for a failed call: `what` names the object and the call, errno is appended. */
export function sysError(code: VxErrorCode, what: string, e = errno()): VxError {
  const err = new VxError(code, `${what}: ${errnoName(e)}`);
  (err as VxError & { errno?: number }).errno = e;
  return err;
}

/** Throws `sysError` when a call returned a negative value; returns the value otherwise. */
export function check(ret: number, code: VxErrorCode, what: string): number {
  if (ret < 0) throw sysError(code, what);
  return ret;
}
