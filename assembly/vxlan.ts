// The VXLAN header (RFC 7348 section 5): 8 bytes in front of the inner Ethernet frame.
//
//   byte 0: flags, only the I flag (0x08) may be set, and it must be;
//   bytes 1-3: reserved, zero;  bytes 4-6: the 24-bit VNI;  byte 7: reserved, zero.
//
// Receive is strict like Linux's vxlan driver without extensions: any other flag or a non-zero
// reserved bit drops the packet with its own counted reason.
import { DROP_TRUNCATED, DROP_VXLAN_FLAGS, DROP_VXLAN_RESERVED, VXLAN_FLAG_I, VXLAN_HLEN } from './constants';

/** Writes the 8-byte header for `vni` at `p`. */
@inline
export function vxlan_write(p: usize, vni: u32): void {
  // Little-endian u32 stores: bytes 0..3 = 08 00 00 00, bytes 4..7 = VNI (big-endian) then 00.
  store<u32>(p, <u32>VXLAN_FLAG_I);
  store<u32>(p, bswap<u32>(vni << 8), 4);
}

/** Parses the header at `p` (with `len` bytes available): the VNI, or -DROP_* when invalid. */
@inline
export function vxlan_read(p: usize, len: u32): i32 {
  if (len < <u32>VXLAN_HLEN) return -DROP_TRUNCATED;
  const w0 = load<u32>(p);
  const w1 = load<u32>(p, 4);
  if ((w0 & 0xff) != <u32>VXLAN_FLAG_I) return -DROP_VXLAN_FLAGS;
  if ((w0 >>> 8) != 0 || (w1 >>> 24) != 0) return -DROP_VXLAN_RESERVED;
  return <i32>(bswap<u32>(w1) >>> 8);
}
