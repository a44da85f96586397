// Bounds-checked parsing of the headers vxnet looks at: Ethernet, 802.1Q/802.1ad tags, ARP, IPv4,
// IPv6 (fixed header, extension headers skipped), UDP and TCP.
//
// The contract is one rule: nothing is read outside [p, p+len), whatever the length fields say.
// Every read is preceded by a check against the bytes that are really there, and every length field
// is checked against those bytes before anything after it is trusted (an IPv4 total length or a UDP
// length larger than what arrived is DROP_TRUNCATED; one too small to hold its own header is
// DROP_MALFORMED). The parser writes nothing but its PARSE_SIZE-byte result record.
//
// The result is a fixed record (PARSE_* in constants.ts) rather than return values because the host
// reads a whole batch of them at once; the L2 walk alone (`l2_walk`) is also exported for callers
// that need only the L3 offset per packet (flow hashing, the FDB path) and have no record to fill.
import {
  DESC_LEN,
  DESC_PTR,
  DESC_SIZE,
  DROP_MALFORMED,
  DROP_TRUNCATED,
  ETH_HLEN,
  ETH_P_8021AD,
  ETH_P_8021Q,
  ETH_P_ARP,
  ETH_P_IPV4,
  ETH_P_IPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPV4_HLEN,
  IPV6_HLEN,
  ARP_LEN,
  PARSE_ARP_OP,
  PARSE_DPORT,
  PARSE_ETHERTYPE,
  PARSE_F_ARP,
  PARSE_F_ETH,
  PARSE_F_FRAG,
  PARSE_F_IPV4,
  PARSE_F_IPV6,
  PARSE_F_IPV6_EXT,
  PARSE_F_L4_OTHER,
  PARSE_F_QINQ,
  PARSE_F_TCP,
  PARSE_F_UDP,
  PARSE_F_VLAN,
  PARSE_FLAGS,
  PARSE_FRAG_OFF,
  PARSE_L3_LEN,
  PARSE_L3_OFF,
  PARSE_L4_OFF,
  PARSE_L4_PROTO,
  PARSE_MAX_IPV6_EXT,
  PARSE_MAX_VLAN_TAGS,
  PARSE_OK,
  PARSE_PAYLOAD_LEN,
  PARSE_PAYLOAD_OFF,
  PARSE_SIZE,
  PARSE_SPORT,
  PARSE_STATUS,
  PARSE_VLAN,
  PARSE_VLAN_OUTER,
  TCP_HLEN,
  UDP_HLEN,
} from './constants';

/** The big-endian u16 at p + off. */
@inline
export function be16(p: usize, off: u32): u32 {
  return <u32>bswap<u16>(load<u16>(p + off));
}

/**
 * Walks Ethernet and up to PARSE_MAX_VLAN_TAGS tags: `(ethertype << 16) | l3_offset`, or 0 when the
 * frame is too short for the Ethernet header or a tag it announces. The inner ethertype is the one
 * after the last tag walked.
 */
@inline
export function l2_walk(p: usize, len: u32): u32 {
  if (len < <u32>ETH_HLEN) return 0;
  let et = be16(p, 12);
  let off: u32 = ETH_HLEN;
  for (let tags = 0; tags < PARSE_MAX_VLAN_TAGS; tags++) {
    if (et != ETH_P_8021Q && et != ETH_P_8021AD) break;
    if (off + 4 > len) return 0;
    et = be16(p, off + 2);
    off += 4;
  }
  return (et << 16) | off;
}

@inline
function finish(r: usize, status: u32, flags: u32): u32 {
  store<u32>(r + PARSE_STATUS, status);
  store<u32>(r + PARSE_FLAGS, flags);
  return status;
}

/** UDP or TCP (or another L4) at `l4` with `l4len` bytes the IP layer vouches for. */
@inline
function parse_l4(p: usize, l4: u32, l4len: u32, proto: u32, first_frag: bool, r: usize, flags: u32): u32 {
  store<u32>(r + PARSE_L4_OFF, l4);
  if (proto == IPPROTO_UDP) {
    if (l4len < <u32>UDP_HLEN) return finish(r, DROP_TRUNCATED, flags);
    // The UDP length covers the reassembled datagram, so in a first fragment it cannot be checked.
    let plen = l4len - UDP_HLEN;
    if (!first_frag) {
      const ulen = be16(p, l4 + 4);
      if (ulen < <u32>UDP_HLEN) return finish(r, DROP_MALFORMED, flags);
      if (ulen > l4len) return finish(r, DROP_TRUNCATED, flags);
      plen = ulen - UDP_HLEN;
    }
    store<u32>(r + PARSE_SPORT, be16(p, l4));
    store<u32>(r + PARSE_DPORT, be16(p, l4 + 2));
    store<u32>(r + PARSE_PAYLOAD_OFF, l4 + UDP_HLEN);
    store<u32>(r + PARSE_PAYLOAD_LEN, plen);
    return finish(r, PARSE_OK, flags | PARSE_F_UDP);
  }
  if (proto == IPPROTO_TCP) {
    if (l4len < <u32>TCP_HLEN) return finish(r, DROP_TRUNCATED, flags);
    const doff = (<u32>load<u8>(p + l4 + 12) >>> 4) << 2;
    if (doff < <u32>TCP_HLEN) return finish(r, DROP_MALFORMED, flags);
    if (doff > l4len) return finish(r, DROP_TRUNCATED, flags);
    store<u32>(r + PARSE_SPORT, be16(p, l4));
    store<u32>(r + PARSE_DPORT, be16(p, l4 + 2));
    store<u32>(r + PARSE_PAYLOAD_OFF, l4 + doff);
    store<u32>(r + PARSE_PAYLOAD_LEN, l4len - doff);
    return finish(r, PARSE_OK, flags | PARSE_F_TCP);
  }
  return finish(r, PARSE_OK, flags | PARSE_F_L4_OTHER);
}

@inline
function parse_ipv4(p: usize, len: u32, l3: u32, r: usize, flags: u32): u32 {
  const rem = len - l3;
  if (rem < <u32>IPV4_HLEN) return finish(r, DROP_TRUNCATED, flags);
  const b0 = <u32>load<u8>(p + l3);
  const ihl = (b0 & 0xf) << 2;
  const tot = be16(p, l3 + 2);
  if (b0 >>> 4 != 4 || ihl < <u32>IPV4_HLEN || tot < ihl) return finish(r, DROP_MALFORMED, flags);
  if (tot > rem) return finish(r, DROP_TRUNCATED, flags);
  flags |= PARSE_F_IPV4;
  const proto = <u32>load<u8>(p + l3 + 9);
  store<u32>(r + PARSE_L3_LEN, tot);
  store<u32>(r + PARSE_L4_PROTO, proto);
  const frag = be16(p, l3 + 6);
  const fo = (frag & 0x1fff) << 3;
  if (frag & 0x3fff) {
    flags |= PARSE_F_FRAG;
    store<u32>(r + PARSE_FRAG_OFF, fo);
    // Only the first fragment carries the L4 header.
    if (fo) return finish(r, PARSE_OK, flags);
  }
  return parse_l4(p, l3 + ihl, tot - ihl, proto, (frag & 0x2000) != 0, r, flags);
}

@inline
function parse_ipv6(p: usize, len: u32, l3: u32, r: usize, flags: u32): u32 {
  const rem = len - l3;
  if (rem < <u32>IPV6_HLEN) return finish(r, DROP_TRUNCATED, flags);
  if (<u32>load<u8>(p + l3) >>> 4 != 6) return finish(r, DROP_MALFORMED, flags);
  const tot = be16(p, l3 + 4) + IPV6_HLEN;
  if (tot > rem) return finish(r, DROP_TRUNCATED, flags);
  flags |= PARSE_F_IPV6;
  store<u32>(r + PARSE_L3_LEN, tot);
  const end = l3 + tot;
  let nh = <u32>load<u8>(p + l3 + 6);
  let off = l3 + IPV6_HLEN;
  let more = false;
  for (let i = 0; i <= PARSE_MAX_IPV6_EXT; i++) {
    // Hop-by-hop 0, routing 43, fragment 44, AH 51, destination options 60: all start with
    // (next header, length) and are at least 8 bytes.
    if (nh != 0 && nh != 43 && nh != 44 && nh != 51 && nh != 60) {
      store<u32>(r + PARSE_L4_PROTO, nh);
      return parse_l4(p, off, end - off, nh, more, r, flags);
    }
    if (i == PARSE_MAX_IPV6_EXT) break;
    if (off + 8 > end) return finish(r, DROP_TRUNCATED, flags);
    flags |= PARSE_F_IPV6_EXT;
    const b1 = <u32>load<u8>(p + off + 1);
    const hlen = nh == 44 ? 8 : nh == 51 ? (b1 + 2) << 2 : (b1 + 1) << 3;
    if (off + hlen > end) return finish(r, DROP_TRUNCATED, flags);
    if (nh == 44) {
      const fw = be16(p, off + 2);
      const fo = fw & 0xfff8;
      more = (fw & 1) != 0;
      if (fo || more) {
        flags |= PARSE_F_FRAG;
        store<u32>(r + PARSE_FRAG_OFF, fo);
      }
      if (fo) {
        store<u32>(r + PARSE_L4_PROTO, <u32>load<u8>(p + off));
        return finish(r, PARSE_OK, flags);
      }
    }
    nh = <u32>load<u8>(p + off);
    off += hlen;
  }
  return finish(r, DROP_MALFORMED, flags);
}

@inline
function parse_arp(p: usize, len: u32, l3: u32, r: usize, flags: u32): u32 {
  const rem = len - l3;
  if (rem < 8) return finish(r, DROP_TRUNCATED, flags);
  // Only Ethernet/IPv4 ARP: htype 1, ptype 0x0800, hlen 6, plen 4.
  if (load<u32>(p + l3) != 0x00080100 || load<u16>(p + l3 + 4) != 0x0406) {
    return finish(r, DROP_MALFORMED, flags);
  }
  if (rem < <u32>ARP_LEN) return finish(r, DROP_TRUNCATED, flags);
  store<u32>(r + PARSE_L3_LEN, ARP_LEN);
  store<u32>(r + PARSE_ARP_OP, be16(p, l3 + 6));
  return finish(r, PARSE_OK, flags | PARSE_F_ARP);
}

/**
 * Parses the frame [p, p+len) into the PARSE_SIZE-byte record at `r` and returns its status:
 * PARSE_OK, DROP_TRUNCATED or DROP_MALFORMED. Never reads outside the frame; writes only the record.
 */
export function parse_frame(p: usize, len: u32, r: usize): u32 {
  const z = i32x4.splat(0);
  v128.store(r, z);
  v128.store(r, z, 16);
  v128.store(r, z, 32);
  v128.store(r, z, 48);
  if (len < <u32>ETH_HLEN) return finish(r, DROP_TRUNCATED, 0);
  let flags: u32 = PARSE_F_ETH;
  let et = be16(p, 12);
  let off: u32 = ETH_HLEN;
  let vid: u32 = 0;
  for (let tags = 0; tags < PARSE_MAX_VLAN_TAGS; tags++) {
    if (et != ETH_P_8021Q && et != ETH_P_8021AD) break;
    store<u32>(r + PARSE_ETHERTYPE, et);
    if (off + 4 > len) return finish(r, DROP_TRUNCATED, flags);
    if (tags) {
      store<u32>(r + PARSE_VLAN_OUTER, vid);
      flags |= PARSE_F_QINQ;
    }
    vid = be16(p, off) & 0xfff;
    store<u32>(r + PARSE_VLAN, vid);
    flags |= PARSE_F_VLAN;
    et = be16(p, off + 2);
    off += 4;
  }
  store<u32>(r + PARSE_ETHERTYPE, et);
  store<u32>(r + PARSE_L3_OFF, off);
  if (et == ETH_P_IPV4) return parse_ipv4(p, len, off, r, flags);
  if (et == ETH_P_IPV6) return parse_ipv6(p, len, off, r, flags);
  if (et == ETH_P_ARP) return parse_arp(p, len, off, r, flags);
  return finish(r, PARSE_OK, flags);
}

/**
 * Parses `n` frames given by the descriptors at `descs` (DESC_PTR, DESC_LEN) into `n` records at
 * `out` (PARSE_SIZE bytes each). Returns how many parsed with PARSE_OK.
 */
export function parse_batch(descs: usize, n: u32, out: usize): u32 {
  let ok: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const d = descs + <usize>i * DESC_SIZE;
    const st = parse_frame(<usize>load<u32>(d + DESC_PTR), load<u32>(d + DESC_LEN), out + <usize>i * PARSE_SIZE);
    ok += <u32>(st == PARSE_OK);
  }
  return ok;
}
