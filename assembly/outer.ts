// The outer headers of a VXLAN datagram on a raw IPv4 underlay: IPv4 (20) + UDP (8) + VXLAN (8),
// written in place into the HEADROOM in front of an inner Ethernet frame.
//
// Options (source address, TTL, TOS, DF, UDP checksum, source-port range) live in an OUTER_SIZE-byte
// struct in linear memory rather than in module globals, because a worker's instance does not see
// the main thread's globals; every function takes the struct's address.
//
// The UDP source port follows Linux (`udp_flow_src_port` with `skb_get_hash`): a hash of the inner
// flow (addresses, protocol, ports; made direction-independent like the kernel's flow keys), or of
// the two MAC addresses when the frame has no IP flow; then `h ^= h << 16` and a scale into
// [min, max). The hash is not bit-identical to the kernel's (it uses a boot-time random key); what
// matters is the property: stable per flow, so one flow stays on one underlay path (ECMP/RSS).
import { csum_ipv4_hdr, csum_l4_v4, csum_udp_wire } from './checksum';
import {
  DESC_ADDR,
  DESC_ARG,
  DESC_AUX,
  DESC_LEN,
  DESC_PTR,
  DESC_SIZE,
  DESC_VERDICT,
  DESC_VNI,
  ETH_P_IPV4,
  ETH_P_IPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  NO_INDEX,
  OUTER_F_DF,
  OUTER_F_UDP_CSUM,
  OUTER_FLAGS,
  OUTER_IP_ID,
  OUTER_PORT_MAX,
  OUTER_PORT_MAX_DEFAULT,
  OUTER_PORT_MIN,
  OUTER_PORT_MIN_DEFAULT,
  OUTER_SRC_IP,
  OUTER_TOS,
  OUTER_TTL,
  OUTER_TTL_DEFAULT,
  VERDICT_DROP,
  VERDICT_LOCAL,
  VXLAN_HLEN,
  VXLAN_OVERHEAD_V4,
} from './constants';
import { be16, l2_walk } from './parse';
import { vxlan_read, vxlan_write } from './vxlan';

const HASH_INIT: u32 = 0x9e3779b9;
const IPPROTO_SCTP: u32 = 132;
const IPPROTO_UDPLITE: u32 = 136;

/** Bob Jenkins' final mix of three words (lookup3, as in Linux's jhash). */
@inline
function mix3(a: u32, b: u32, c: u32): u32 {
  c ^= b; c -= rotl<u32>(b, 14);
  a ^= c; a -= rotl<u32>(c, 11);
  b ^= a; b -= rotl<u32>(a, 25);
  c ^= b; c -= rotl<u32>(b, 16);
  a ^= c; a -= rotl<u32>(c, 4);
  b ^= a; b -= rotl<u32>(a, 14);
  c ^= b; c -= rotl<u32>(b, 24);
  return c;
}

/** Hash of an address pair, ports word and protocol, the same for both directions of the flow. */
@inline
function flow_mix(src: u32, dst: u32, ports: u32, proto: u32): u32 {
  // Like __flow_hash_consistentify: order the pair (and the ports with it) before hashing.
  if (src > dst || (src == dst && (ports & 0xffff) > (ports >>> 16))) {
    const t = src;
    src = dst;
    dst = t;
    ports = rotl<u32>(ports, 16);
  }
  return mix3(src + HASH_INIT, dst + HASH_INIT, (ports ^ (proto << 24)) + HASH_INIT);
}

/** The first 4 bytes (the ports) of a TCP/UDP/SCTP/UDP-Lite header at `l4`, or 0 if absent. */
@inline
function ports_at(p: usize, len: u32, l4: u32, proto: u32): u32 {
  if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_SCTP && proto != IPPROTO_UDPLITE) return 0;
  if (l4 + 4 > len) return 0;
  return load<u32>(p + l4);
}

/**
 * The flow hash of the inner frame [frame, frame+len): its IPv4/IPv6 flow (addresses, protocol,
 * ports unless fragmented; IPv6 uses the flow label instead of ports when one is set, as Linux
 * does), or the destination and source MACs with the ethertype when there is no IP header.
 * Reads only inside the frame.
 */
@inline
export function flow_hash(frame: usize, len: u32): u32 {
  const w = l2_walk(frame, len);
  if (w == 0) {
    // Shorter than an Ethernet header: hash what is there of the MACs.
    return len >= 12 ? mix3(load<u32>(frame), load<u32>(frame, 4), load<u32>(frame, 8)) : HASH_INIT;
  }
  const et = w >>> 16;
  const l3 = w & 0xffff;
  if (et == ETH_P_IPV4 && l3 + 20 <= len && load<u8>(frame + l3) >>> 4 == 4) {
    const ihl = (<u32>load<u8>(frame + l3) & 0xf) << 2;
    const proto = <u32>load<u8>(frame + l3 + 9);
    const frag = be16(frame, l3 + 6) & 0x3fff;
    const ports = frag != 0 || ihl < 20 ? 0 : ports_at(frame, len, l3 + ihl, proto);
    return flow_mix(load<u32>(frame + l3 + 12), load<u32>(frame + l3 + 16), ports, proto);
  }
  if (et == ETH_P_IPV6 && l3 + 40 <= len && load<u8>(frame + l3) >>> 4 == 6) {
    const q = frame + l3;
    const src = load<u32>(q, 8) ^ load<u32>(q, 12) ^ load<u32>(q, 16) ^ load<u32>(q, 20);
    const dst = load<u32>(q, 24) ^ load<u32>(q, 28) ^ load<u32>(q, 32) ^ load<u32>(q, 36);
    const proto = <u32>load<u8>(q, 6);
    const label = bswap<u32>(load<u32>(q)) & 0xfffff;
    const ports = label != 0 ? label : ports_at(frame, len, l3 + 40, proto);
    return flow_mix(src, dst, ports, proto);
  }
  return mix3(load<u32>(frame) + et, load<u32>(frame, 4) + HASH_INIT, load<u32>(frame, 8) + HASH_INIT);
}

/** Linux's scaling of a flow hash into the UDP source-port range [min, max); an empty range means 32768..60999. */
@inline
export function flow_src_port(hash: u32, min: u32, max: u32): u32 {
  if (min >= max) {
    min = OUTER_PORT_MIN_DEFAULT;
    max = OUTER_PORT_MAX_DEFAULT;
  }
  hash ^= hash << 16;
  return <u32>((<u64>hash * <u64>(max - min)) >>> 32) + min;
}

/**
 * Writes IPv4 + UDP + VXLAN (VXLAN_OVERHEAD_V4 = 36 bytes) immediately in front of the inner frame
 * [frame, frame+len) and returns the datagram's new start, frame - 36 (the caller must have that
 * headroom). `dst_ip_be` is the destination address in memory order (as loaded from a sin_addr),
 * `dst_port` a host-order number. Returns 0, writing nothing, when the datagram would exceed 65535.
 */
export function outer_v4_push(frame: usize, len: u32, vni: u32, cfg: usize, dst_ip_be: u32, dst_port: u32): usize {
  return outer_v4_push_hashed(frame, len, vni, cfg, dst_ip_be, dst_port, flow_hash(frame, len));
}

/** `outer_v4_push` with the inner flow hash already computed (the batch also reports it). */
@inline
function outer_v4_push_hashed(
  frame: usize,
  len: u32,
  vni: u32,
  cfg: usize,
  dst_ip_be: u32,
  dst_port: u32,
  hash: u32,
): usize {
  const tot = len + VXLAN_OVERHEAD_V4;
  if (tot > 0xffff) return 0;
  const ip = frame - VXLAN_OVERHEAD_V4;
  const udp = ip + 20;
  vxlan_write(udp + 8, vni);
  const flags = load<u32>(cfg + OUTER_FLAGS);
  let ttl = load<u32>(cfg + OUTER_TTL) & 0xff;
  if (ttl == 0) ttl = OUTER_TTL_DEFAULT;
  // A datagram with DF set is atomic (RFC 6864): its id may be 0. Without DF it needs an id that
  // changes; a plain counter in the config (races between threads only repeat an id now and then).
  let id: u32 = 0;
  let frag: u32 = 0;
  if (flags & OUTER_F_DF) {
    frag = 0x40; // 0x4000 big-endian, as a little-endian u16
  } else {
    id = load<u32>(cfg + OUTER_IP_ID);
    store<u32>(cfg + OUTER_IP_ID, id + 1);
    id = <u32>bswap<u16>(<u16>id);
  }
  const tos = load<u32>(cfg + OUTER_TOS) & 0xff;
  store<u32>(ip, 0x45 | (tos << 8) | (<u32>bswap<u16>(<u16>tot) << 16));
  store<u32>(ip + 4, id | (frag << 16));
  store<u32>(ip + 8, ttl | (IPPROTO_UDP << 8)); // checksum field 0 until computed
  store<u32>(ip + 12, load<u32>(cfg + OUTER_SRC_IP));
  store<u32>(ip + 16, dst_ip_be);
  store<u16>(ip + 10, csum_ipv4_hdr(ip));
  const sport = flow_src_port(hash, load<u32>(cfg + OUTER_PORT_MIN), load<u32>(cfg + OUTER_PORT_MAX));
  const ulen = len + 16;
  store<u32>(udp, <u32>bswap<u16>(<u16>sport) | (<u32>bswap<u16>(<u16>dst_port) << 16));
  store<u32>(udp + 4, <u32>bswap<u16>(<u16>ulen));
  if (flags & OUTER_F_UDP_CSUM) store<u16>(udp + 6, csum_udp_wire(csum_l4_v4(ip, IPPROTO_UDP, udp, ulen)));
  return ip;
}

/**
 * Encapsulates `n` frames: for each descriptor, the frame (DESC_PTR, DESC_LEN) gets the outer
 * headers for VNI DESC_VNI towards the sockaddr_in at DESC_ADDR (port and address read from it);
 * DESC_PTR/DESC_LEN are moved to the datagram and DESC_AUX gets the inner flow hash. A descriptor
 * whose datagram would be too large keeps its frame and gets DESC_LEN 0. Returns how many were built.
 */
export function outer_v4_batch(descs: usize, n: u32, cfg: usize): u32 {
  let built: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const d = descs + <usize>i * DESC_SIZE;
    const frame = <usize>load<u32>(d + DESC_PTR);
    const len = load<u32>(d + DESC_LEN);
    const sa = <usize>load<u32>(d + DESC_ADDR);
    const hash = flow_hash(frame, len);
    const start = outer_v4_push_hashed(frame, len, load<u32>(d + DESC_VNI), cfg, load<u32>(sa + 4), be16(sa, 2), hash);
    store<u32>(d + DESC_AUX, hash);
    if (start == 0) {
      store<u32>(d + DESC_LEN, 0);
      continue;
    }
    store<u32>(d + DESC_PTR, <u32>start);
    store<u32>(d + DESC_LEN, len + VXLAN_OVERHEAD_V4);
    built++;
  }
  return built;
}

/**
 * Strips the VXLAN header from `n` UDP payloads (DESC_PTR/DESC_LEN at the VXLAN header, as a UDP
 * socket delivers them): on success DESC_VNI gets the VNI, DESC_PTR/DESC_LEN move to the inner
 * frame and DESC_VERDICT is VERDICT_LOCAL with DESC_ARG NO_INDEX (no port chosen here); a bad
 * header gets VERDICT_DROP with the DROP_* reason in DESC_ARG (the strict checks of vxlan_read).
 * Returns how many passed.
 */
export function vxlan_pull_batch(descs: usize, n: u32): u32 {
  let ok: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const d = descs + <usize>i * DESC_SIZE;
    const p = <usize>load<u32>(d + DESC_PTR);
    const len = load<u32>(d + DESC_LEN);
    const v = vxlan_read(p, len);
    if (v < 0) {
      store<u32>(d + DESC_VERDICT, VERDICT_DROP);
      store<u32>(d + DESC_ARG, <u32>-v);
      continue;
    }
    store<u32>(d + DESC_VNI, <u32>v);
    store<u32>(d + DESC_PTR, <u32>(p + VXLAN_HLEN));
    store<u32>(d + DESC_LEN, len - VXLAN_HLEN);
    store<u32>(d + DESC_VERDICT, VERDICT_LOCAL);
    store<u32>(d + DESC_ARG, <u32>NO_INDEX);
    ok++;
  }
  return ok;
}
