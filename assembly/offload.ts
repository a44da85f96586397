// TAP offloads in WASM: TCP segmentation of the TSO frames a vnet-hdr TAP hands out, and GRO-style
// coalescing of received TCP segments into one TSO frame for the TAP.
//
// tso_split_batch, before encap. A TAP with IFF_VNET_HDR + TSO gives frames of up to 64 KB with a
// virtio_net_hdr in the 12 bytes in front (VNET_*). Each GSO frame becomes MSS-sized segments
// without moving the payload: segment i's Ethernet/IP/TCP headers are copied into a header slot
// (`slot` bytes each, the header at HDR_AT so encap can push outer headers in front) and patched
// (IP length/id/checksum or IPv6 payload length, TCP sequence and flags), its TCP checksum is
// computed in full over header and payload, and its descriptor says where the payload stays:
//   DESC_PTR = headers, DESC_LEN = headers + payload, DESC_AUX = payload length,
//   DESC_AUX2 = payload address (in the TAP read slot).
// A frame without GSO keeps its place (DESC_AUX 0) and gets its partial checksum completed
// (VNET_F_NEEDS_CSUM), so what leaves is what any RFC 7348 peer accepts.
//
// gro_batch, after decap. UDP GRO gives runs of datagrams of one flow; decap leaves one inner frame
// per descriptor. Runs of TCP segments of one connection (same addresses, ports, header length and
// options, consecutive sequence numbers, MSS-sized but the last, checksums intact, no
// SYN/FIN/RST/URG) become one TAP write: a gather list of the virtio_net_hdr (GSO TCPV4/TCPV6,
// NEEDS_CSUM), the first segment with its headers patched to the merged length, and the other
// segments' payloads in place. Anything else is written as it came, with an empty virtio_net_hdr.
// Output descriptor: DESC_PTR = the list of (u32 address, u32 length) pairs, DESC_LEN = pairs,
// DESC_ARG = the port (as decap chose it), DESC_AUX = segments merged.
import {
  csum_add,
  csum_fold,
  csum_ipv4_hdr,
  csum_partial,
  csum_pseudo_v4,
  csum_pseudo_v6,
} from './checksum';
import {
  DESC_ARG,
  DESC_AUX,
  DESC_AUX2,
  DESC_LEN,
  DESC_PTR,
  DESC_SIZE,
  DESC_VERDICT,
  IPPROTO_TCP,
  VERDICT_LOCAL,
  VNET_CSUM_OFFSET,
  VNET_CSUM_START,
  VNET_F_NEEDS_CSUM,
  VNET_FLAGS,
  VNET_GSO_ECN,
  VNET_GSO_NONE,
  VNET_GSO_SIZE,
  VNET_GSO_TCPV4,
  VNET_GSO_TCPV6,
  VNET_GSO_TYPE,
  VNET_HDR_LEN,
  VNET_HDR_LEN_FIELD,
} from './constants';

/** Offset of the headers in a header slot: room for outer IPv4 + UDP + VXLAN (36) in front. */
const HDR_AT: u32 = 64;
/** Largest Ethernet + IP + TCP header a slot takes (IPv6 without extensions + TCP options). */
const HDR_MAX: u32 = 192;
/** Most TCP segments merged into one TAP frame. */
const GRO_MAX_SEGS: u32 = 64;
const TCP_FIN: u32 = 0x01;
const TCP_SYN: u32 = 0x02;
const TCP_RST: u32 = 0x04;
const TCP_PSH: u32 = 0x08;
const TCP_URG: u32 = 0x20;
const TCP_CWR: u32 = 0x80;

@inline
function be16(p: usize): u32 {
  return <u32>bswap<u16>(load<u16>(p));
}

@inline
function put_be16(p: usize, v: u32): void {
  store<u16>(p, bswap<u16>(<u16>v));
}

/** Offset of the L3 header (after one optional VLAN tag) and its EtherType, or 0 when not IP. */
@inline
function l3_of(p: usize, len: u32): u32 {
  let off: u32 = 14;
  let type = be16(p + 12);
  if (type == 0x8100 && len >= 18) {
    type = be16(p + 16);
    off = 18;
  }
  if (type == 0x0800) return off;
  if (type == 0x86dd) return off | 0x10000;
  return 0;
}

/** Completes a partial L4 checksum (VNET_F_NEEDS_CSUM): sum from csum_start, store at + offset. */
function complete_csum(p: usize, len: u32, vh: usize): void {
  const start = <u32>load<u16>(vh, VNET_CSUM_START);
  const off = <u32>load<u16>(vh, VNET_CSUM_OFFSET);
  if (start + off + 2 > len) return;
  store<u16>(p + start + off, csum_fold(csum_partial(p + start, len - start, 0)));
}

// ---- Segmentation -------------------------------------------------------------------------------

/**
 * Splits the `n` TAP frames at `descs` (vnet hdr in front of each) into `out` (at most `out_cap`
 * descriptors), using header slots at `hdrs` (`hdr_cap` slots of `slot` bytes). Stops before a
 * frame that does not fit; stores how many input frames were consumed at `res` and, at `res + 4`,
 * how many of them were GSO frames. Returns the number of output descriptors.
 */
export function tso_split_batch(
  descs: usize,
  n: u32,
  out: usize,
  out_cap: u32,
  hdrs: usize,
  hdr_cap: u32,
  slot: u32,
  res: usize,
): u32 {
  let k: u32 = 0;
  let h: u32 = 0;
  let gso_frames: u32 = 0;
  let i: u32 = 0;
  for (; i < n; i++) {
    const d = descs + <usize>i * DESC_SIZE;
    const p = <usize>load<u32>(d, DESC_PTR);
    const len = load<u32>(d, DESC_LEN);
    const vh = p - VNET_HDR_LEN;
    const gso = <u32>load<u8>(vh, VNET_GSO_TYPE) & ~(<u32>VNET_GSO_ECN);
    const nseg = gso == VNET_GSO_NONE ? 1 : tso_count(p, len, vh);
    if (nseg == 0) continue; // a GSO frame that cannot be valid: dropped here
    if (k + nseg > out_cap || (gso != VNET_GSO_NONE && h + nseg > hdr_cap)) break;
    if (gso == VNET_GSO_NONE) {
      if (load<u8>(vh, VNET_FLAGS) & VNET_F_NEEDS_CSUM) complete_csum(p, len, vh);
      const o = out + <usize>k * DESC_SIZE;
      store<u32>(o, <u32>p, DESC_PTR);
      store<u32>(o, len, DESC_LEN);
      store<u32>(o, 0, DESC_AUX);
      store<u32>(o, 0, DESC_AUX2);
      k++;
      continue;
    }
    tso_segment(p, len, vh, nseg, out + <usize>k * DESC_SIZE, hdrs + <usize>h * slot, slot);
    k += nseg;
    h += nseg;
    gso_frames++;
  }
  store<u32>(res, i);
  store<u32>(res, gso_frames, 4);
  return k;
}

/** Segments a GSO frame will make, or 0 when its headers do not hold together. */
function tso_count(p: usize, len: u32, vh: usize): u32 {
  const gso = <u32>load<u8>(vh, VNET_GSO_TYPE) & ~(<u32>VNET_GSO_ECN);
  const mss = <u32>load<u16>(vh, VNET_GSO_SIZE);
  const l3 = l3_of(p, len);
  if (l3 == 0 || mss == 0) return 0;
  const v6 = (l3 & 0x10000) != 0;
  const ip = p + (l3 & 0xffff);
  let tcp: u32;
  if (gso == VNET_GSO_TCPV4 && !v6) {
    if (<u32>load<u8>(ip, 9) != IPPROTO_TCP) return 0;
    tcp = (l3 & 0xffff) + ((<u32>load<u8>(ip) & 15) << 2);
  } else if (gso == VNET_GSO_TCPV6 && v6) {
    if (<u32>load<u8>(ip, 6) != IPPROTO_TCP) return 0; // no extension headers
    tcp = (l3 & 0xffff) + 40;
  } else return 0;
  if (tcp + 20 > len) return 0;
  const hl = tcp + ((<u32>load<u8>(p + tcp, 12) >> 4) << 2);
  if (hl > HDR_MAX || hl >= len) return 0;
  return (len - hl + mss - 1) / mss;
}

/** Writes the `nseg` segment descriptors of one GSO frame at `o`, headers into slots at `hdrs`. */
function tso_segment(p: usize, len: u32, vh: usize, nseg: u32, o: usize, hdrs: usize, slot: u32): void {
  const mss = <u32>load<u16>(vh, VNET_GSO_SIZE);
  const l3 = l3_of(p, len);
  const v6 = (l3 & 0x10000) != 0;
  const ipo = l3 & 0xffff;
  const ip = p + ipo;
  const tcpo = v6 ? ipo + 40 : ipo + ((<u32>load<u8>(ip) & 15) << 2);
  const thl = (<u32>load<u8>(p + tcpo, 12) >> 4) << 2;
  const hl = tcpo + thl;
  const payload = len - hl;
  const id0 = be16(ip + 4);
  const seq0 = bswap<u32>(load<u32>(p + tcpo, 4));
  const flags = <u32>load<u8>(p + tcpo, 13);
  const ph0: u32 = v6 ? csum_pseudo_v6(ip + 8, ip + 24, IPPROTO_TCP, 0) : csum_pseudo_v4(load<u32>(ip, 12), load<u32>(ip, 16), IPPROTO_TCP, 0);
  for (let i: u32 = 0; i < nseg; i++) {
    const plen = i + 1 < nseg ? mss : payload - i * mss;
    const pay = p + hl + i * mss;
    const s = hdrs + <usize>i * slot + HDR_AT;
    memory.copy(s, p, hl);
    const sip = s + ipo;
    const stcp = s + tcpo;
    if (v6) {
      put_be16(sip + 4, thl + plen);
    } else {
      put_be16(sip + 2, (tcpo - ipo) + thl + plen);
      put_be16(sip + 4, (id0 + i) & 0xffff);
      store<u16>(sip + 10, 0);
      store<u16>(sip + 10, csum_ipv4_hdr(sip));
    }
    store<u32>(stcp + 4, bswap<u32>(seq0 + i * mss));
    let f = flags;
    if (i + 1 < nseg) f &= ~(TCP_FIN | TCP_PSH);
    if (i > 0) f &= ~TCP_CWR;
    store<u8>(stcp + 13, <u8>f);
    store<u16>(stcp + 16, 0);
    // The pseudo-header's length word, added to the sum with the length 0 taken above.
    let sum = csum_add(ph0, <u32>bswap<u16>(<u16>(thl + plen)));
    sum = csum_partial(stcp, thl, sum);
    sum = csum_partial(pay, plen, sum);
    store<u16>(stcp + 16, csum_fold(sum));
    const d = o + <usize>i * DESC_SIZE;
    store<u32>(d, <u32>s, DESC_PTR);
    store<u32>(d, hl + plen, DESC_LEN);
    store<u32>(d, plen, DESC_AUX);
    store<u32>(d, <u32>pay, DESC_AUX2);
  }
}

// ---- Coalescing -----------------------------------------------------------------------------------

/** Where a frame's TCP header is (from the Ethernet header) when it may merge, else 0. */
function gro_tcp(p: usize, len: u32): u32 {
  if (len < 14 + 20 + 20) return 0;
  const type = be16(p + 12);
  if (type == 0x0800) {
    const ip = p + 14;
    if (load<u8>(ip) != 0x45 || <u32>load<u8>(ip, 9) != IPPROTO_TCP) return 0;
    if ((be16(ip + 6) & 0x3fff) != 0) return 0; // a fragment
    if (be16(ip + 2) + 14 != len) return 0;
    return 34;
  }
  if (type == 0x86dd) {
    const ip = p + 14;
    if (len < 14 + 40 + 20 || <u32>load<u8>(ip, 6) != IPPROTO_TCP) return 0;
    if (be16(ip + 4) + 54 != len) return 0;
    return 54;
  }
  return 0;
}

/** The frame's TCP checksum holds (over the pseudo-header and the whole segment). */
function tcp_ok(p: usize, len: u32, tcpo: u32): bool {
  const ip = p + 14;
  const l4len = len - tcpo;
  const ph = tcpo == 34 ? csum_pseudo_v4(load<u32>(ip, 12), load<u32>(ip, 16), IPPROTO_TCP, l4len) : csum_pseudo_v6(ip + 8, ip + 24, IPPROTO_TCP, l4len);
  return csum_fold(csum_partial(p + tcpo, l4len, ph)) == 0;
}

/** Whether frame `q` continues the flow of frame `p` (headers of the same length `hl`) at `seq`. */
function gro_same(p: usize, q: usize, tcpo: u32, hl: u32, seq: u32): bool {
  // Addresses and ports; then the rest of the IP header that must not change.
  if (tcpo == 34) {
    if (load<u64>(p, 26) != load<u64>(q, 26) || load<u32>(p, 34) != load<u32>(q, 34)) return false;
    if (load<u8>(p, 15) != load<u8>(q, 15) || load<u8>(p, 22) != load<u8>(q, 22)) return false; // TOS, TTL
    if ((load<u8>(p, 20) & 0x40) != (load<u8>(q, 20) & 0x40)) return false; // DF
  } else {
    for (let b: u32 = 22; b < 58; b += 4) if (load<u32>(p + b) != load<u32>(q + b)) return false;
    if (load<u32>(p, 14) != load<u32>(q, 14) || load<u8>(p, 21) != load<u8>(q, 21)) return false;
  }
  if (bswap<u32>(load<u32>(q + tcpo, 4)) != seq) return false;
  if (load<u32>(p + tcpo, 8) != load<u32>(q + tcpo, 8)) return false; // ACK number
  if (load<u8>(p + tcpo, 12) != load<u8>(q + tcpo, 12)) return false; // data offset
  if (load<u16>(p + tcpo, 14) != load<u16>(q + tcpo, 14)) return false; // window
  if ((<u32>load<u8>(q + tcpo, 13) & ~TCP_PSH) != (<u32>load<u8>(p + tcpo, 13) & ~TCP_PSH)) return false;
  for (let b = tcpo + 20; b < hl; b++) if (load<u8>(p + b) != load<u8>(q + b)) return false; // options
  return true;
}

/**
 * Turns the `n` decapsulated descriptors at `descs` into TAP writes at `out` (see the top of this
 * file): gather lists at `lists` (room for 3 * n pairs), virtio_net_hdrs at `vhdrs` (16 bytes
 * apart, n of them). Descriptors that are not VERDICT_LOCAL are skipped. Returns the writes.
 */
export function gro_batch(descs: usize, n: u32, out: usize, lists: usize, vhdrs: usize): u32 {
  let k: u32 = 0;
  let list = lists;
  let i: u32 = 0;
  while (i < n) {
    const d = descs + <usize>i * DESC_SIZE;
    i++;
    if (load<u32>(d, DESC_VERDICT) != VERDICT_LOCAL) continue;
    const p = <usize>load<u32>(d, DESC_PTR);
    const len = load<u32>(d, DESC_LEN);
    const port = load<u32>(d, DESC_ARG);
    const vh = vhdrs + <usize>k * 16;
    memory.fill(vh, 0, VNET_HDR_LEN);
    const o = out + <usize>k * DESC_SIZE;
    store<u32>(o, <u32>list, DESC_PTR);
    store<u32>(o, port, DESC_ARG);
    store<u32>(list, <u32>vh);
    store<u32>(list, VNET_HDR_LEN, 4);
    store<u32>(list, <u32>p, 8);
    store<u32>(list, len, 12);
    let pairs: u32 = 2;
    let segs: u32 = 1;
    const tcpo = gro_tcp(p, len);
    const flags = tcpo ? <u32>load<u8>(p + tcpo, 13) : 0;
    if (tcpo && (flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_URG)) == 0 && tcp_ok(p, len, tcpo)) {
      const hl = tcpo + ((<u32>load<u8>(p + tcpo, 12) >> 4) << 2);
      const mss = len - hl;
      let total = mss;
      let seq = bswap<u32>(load<u32>(p + tcpo, 4)) + mss;
      let psh = flags & TCP_PSH;
      while (mss > 0 && i < n && segs < GRO_MAX_SEGS && (psh == 0)) {
        const e = descs + <usize>i * DESC_SIZE;
        if (load<u32>(e, DESC_VERDICT) != VERDICT_LOCAL || load<u32>(e, DESC_ARG) != port) break;
        const q = <usize>load<u32>(e, DESC_PTR);
        const qlen = load<u32>(e, DESC_LEN);
        if (qlen <= hl || qlen - hl > mss || gro_tcp(q, qlen) != tcpo) break;
        if (total + (qlen - hl) + (hl - 14) > 65535) break;
        if (!gro_same(p, q, tcpo, hl, seq) || !tcp_ok(q, qlen, tcpo)) break;
        const plen = qlen - hl;
        store<u32>(list + <usize>pairs * 8, <u32>(q + hl));
        store<u32>(list + <usize>pairs * 8, plen, 4);
        pairs++;
        segs++;
        total += plen;
        seq += plen;
        psh |= <u32>load<u8>(q + tcpo, 13) & TCP_PSH;
        i++;
        if (plen < mss) break; // a short segment ends the run
      }
      if (segs > 1) gro_patch(p, tcpo, hl, mss, total, flags | psh, vh);
    }
    store<u32>(o, pairs, DESC_LEN);
    store<u32>(o, segs, DESC_AUX);
    list += <usize>pairs * 8;
    k++;
  }
  return k;
}

/** Rewrites the first segment's headers for the merged payload and fills the virtio_net_hdr. */
function gro_patch(p: usize, tcpo: u32, hl: u32, mss: u32, total: u32, flags: u32, vh: usize): void {
  const ip = p + 14;
  const tcp = p + tcpo;
  const l4len = hl - tcpo + total;
  let ph: u32;
  if (tcpo == 34) {
    put_be16(ip + 2, hl - 14 + total);
    store<u16>(ip + 10, 0);
    store<u16>(ip + 10, csum_ipv4_hdr(ip));
    ph = csum_pseudo_v4(load<u32>(ip, 12), load<u32>(ip, 16), IPPROTO_TCP, l4len);
  } else {
    put_be16(ip + 4, l4len);
    ph = csum_pseudo_v6(ip + 8, ip + 24, IPPROTO_TCP, l4len);
  }
  store<u8>(tcp + 13, <u8>flags);
  // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum, not complemented.
  store<u16>(tcp + 16, ~csum_fold(ph));
  store<u8>(vh, VNET_F_NEEDS_CSUM, VNET_FLAGS);
  store<u8>(vh, <u8>(tcpo == 34 ? VNET_GSO_TCPV4 : VNET_GSO_TCPV6), VNET_GSO_TYPE);
  store<u16>(vh, <u16>hl, VNET_HDR_LEN_FIELD);
  store<u16>(vh, <u16>mss, VNET_GSO_SIZE);
  store<u16>(vh, <u16>tcpo, VNET_CSUM_START);
  store<u16>(vh, 16, VNET_CSUM_OFFSET);
}
