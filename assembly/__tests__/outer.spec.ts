// assembly/outer.ts: the outer IPv4 + UDP + VXLAN bytes in front of an inner frame, the options in
// the config struct (TTL, TOS, DF, UDP checksum, port range), and the flow-hash source port.
// Interop with scapy and the Linux kernel is checked in test/vxlan-wire.test.ts.
import { csum_ipv4_hdr, csum_udp4_ok } from '../checksum';
import {
  OUTER_F_DF,
  OUTER_F_UDP_CSUM,
  OUTER_FLAGS,
  OUTER_IP_ID,
  OUTER_PORT_MAX,
  OUTER_PORT_MIN,
  OUTER_SRC_IP,
  OUTER_TOS,
  OUTER_TTL,
} from '../constants';
import { flow_hash, flow_src_port, outer_v4_push } from '../outer';
import { vxlan_read } from '../vxlan';

const area = heap.alloc(4096);
const frame = area + 128;
const cfg = heap.alloc(32);
const DST: u32 = 0x0200000a; // 10.0.0.2 in memory order

// Ether/IPv4/UDP 10.0.0.1:1234 -> 10.0.0.2:5678 "hello" (scapy)
const UDP4 = '02000000000202000000000108004500002100010000401166c90a0000010a00000204d2162e000d8cff68656c6c6f';
// Ether/IPv6/UDP fd00::1:53 -> fd00::2:5353 "xyz" (scapy), flow label 0
const V6UDP =
  '02000000000202000000000186dd60000000000b1140fd000000000000000000000000000001fd000000000000000000000000000002003514e9000bfe3b78797a';
const ARP = '020000000002020000000001080600010800060400010200000000010a0000010000000000000a000002';

function put(p: usize, hex: string): u32 {
  const n = hex.length >> 1;
  for (let i = 0; i < n; i++) store<u8>(p + i, <u8>I32.parseInt(hex.substr(i * 2, 2), 16));
  return n;
}

function be16(p: usize): u32 {
  return <u32>bswap<u16>(load<u16>(p));
}

function setup(flags: u32): void {
  memory.fill(cfg, 0, 32);
  store<u32>(cfg + OUTER_SRC_IP, 0x0100000a); // 10.0.0.1
  store<u32>(cfg + OUTER_TTL, 64);
  store<u32>(cfg + OUTER_FLAGS, flags);
  store<u32>(cfg + OUTER_PORT_MIN, 49152);
  store<u32>(cfg + OUTER_PORT_MAX, 65535);
}

describe('outer_v4_push', () => {
  it('writes IPv4 (DF, TTL 64) + UDP (checksummed) + VXLAN and returns frame - 36', () => {
    setup(OUTER_F_DF | OUTER_F_UDP_CSUM);
    const n = put(frame, UDP4);
    memory.fill(area, 0xee, 128);
    const ip = outer_v4_push(frame, n, 42, cfg, DST, 4789);
    expect(ip).toBe(frame - 36);
    expect(load<u8>(ip - 1)).toBe(0xee); // nothing written before the outer header
    expect(load<u8>(ip)).toBe(0x45);
    expect(be16(ip + 2)).toBe(n + 36);
    expect(be16(ip + 4)).toBe(0); // id 0 for an atomic datagram
    expect(be16(ip + 6)).toBe(0x4000);
    expect(load<u8>(ip + 8)).toBe(64);
    expect(load<u8>(ip + 9)).toBe(17);
    expect(load<u32>(ip + 12)).toBe(0x0100000a);
    expect(load<u32>(ip + 16)).toBe(DST);
    expect(csum_ipv4_hdr(ip)).toBe(0);
    const sport = be16(ip + 20);
    expect(sport >= 49152 && sport < 65535).toBe(true);
    expect(be16(ip + 22)).toBe(4789);
    expect(be16(ip + 24)).toBe(n + 16);
    expect(load<u16>(ip + 26)).not.toBe(0);
    expect(csum_udp4_ok(ip, ip + 20, n + 16)).toBe(true);
    expect(vxlan_read(ip + 28, 8)).toBe(42);
    expect(load<u8>(frame)).toBe(0x02); // inner frame untouched
  });
  it('without DF uses a counting IP id, without UDP_CSUM sends checksum 0, and honours TTL and TOS', () => {
    setup(0);
    store<u32>(cfg + OUTER_TTL, 7);
    store<u32>(cfg + OUTER_TOS, 0xb8);
    store<u32>(cfg + OUTER_IP_ID, 0x1234);
    const n = put(frame, UDP4);
    let ip = outer_v4_push(frame, n, 0xffffff, cfg, DST, 8472);
    expect(be16(ip + 4)).toBe(0x1234);
    expect(be16(ip + 6)).toBe(0);
    expect(load<u8>(ip + 1)).toBe(0xb8);
    expect(load<u8>(ip + 8)).toBe(7);
    expect(csum_ipv4_hdr(ip)).toBe(0);
    expect(load<u16>(ip + 26)).toBe(0);
    expect(be16(ip + 22)).toBe(8472);
    expect(vxlan_read(ip + 28, 8)).toBe(0xffffff);
    ip = outer_v4_push(frame, n, 0, cfg, DST, 4789);
    expect(be16(ip + 4)).toBe(0x1235);
    expect(vxlan_read(ip + 28, 8)).toBe(0);
  });
  it('TTL 0 in the config means 64', () => {
    setup(OUTER_F_DF);
    store<u32>(cfg + OUTER_TTL, 0);
    const ip = outer_v4_push(frame, put(frame, UDP4), 1, cfg, DST, 4789);
    expect(load<u8>(ip + 8)).toBe(64);
  });
  it('refuses a datagram over 65535 bytes and writes nothing', () => {
    setup(OUTER_F_DF);
    memory.fill(area, 0xee, 128);
    expect(outer_v4_push(frame, 65535 - 35, 1, cfg, DST, 4789)).toBe(0);
    expect(load<u8>(frame - 36)).toBe(0xee);
    expect(outer_v4_push(frame, 65535 - 36, 1, cfg, DST, 4789)).toBe(frame - 36);
  });
});

describe('flow_src_port (Linux udp_flow_src_port scaling)', () => {
  it('known answers', () => {
    expect(flow_src_port(0, 1000, 2000)).toBe(1000);
    // 0x8000 ^ (0x8000 << 16) = 0x80008000; * 65536 >> 32 = 0x8000.
    expect(flow_src_port(0x8000, 0, 65536)).toBe(32768);
    expect(flow_src_port(0xffffffff, 1000, 2000)).toBe(1000);
  });
  it('stays in [min, max) and uses 32768..60999 for an empty range', () => {
    for (let h: u32 = 1; h < 0xffffff00; h += 0x01234567) {
      const p = flow_src_port(h, 49152, 49160);
      expect(p >= 49152 && p < 49160).toBe(true);
      const q = flow_src_port(h, 5, 5);
      expect(q >= 32768 && q < 61000).toBe(true);
    }
  });
});

describe('flow_hash', () => {
  it('is stable per flow and ignores the payload', () => {
    const n = put(frame, UDP4);
    const h = flow_hash(frame, n);
    expect(flow_hash(frame, n)).toBe(h);
    store<u8>(frame + n - 1, 0);
    expect(flow_hash(frame, n)).toBe(h);
  });
  it('is the same for both directions of a flow and differs when a port changes', () => {
    const n = put(frame, UDP4);
    const h = flow_hash(frame, n);
    // Swap the addresses and the ports.
    const s = load<u32>(frame + 26);
    store<u32>(frame + 26, load<u32>(frame + 30));
    store<u32>(frame + 30, s);
    store<u32>(frame + 34, (load<u32>(frame + 34) >>> 16) | (load<u32>(frame + 34) << 16));
    expect(flow_hash(frame, n)).toBe(h);
    store<u8>(frame + 35, 0x99);
    expect(flow_hash(frame, n)).not.toBe(h);
  });
  it('IPv6: ports without a flow label, the label instead of ports when one is set', () => {
    const n = put(frame, V6UDP);
    const h = flow_hash(frame, n);
    store<u8>(frame + 55, 0x99); // source port 53 -> 0x99
    const h2 = flow_hash(frame, n);
    expect(h2).not.toBe(h);
    store<u8>(frame + 16, 0x0a); // flow label 0xa0000... : now ports no longer count
    const h3 = flow_hash(frame, n);
    store<u8>(frame + 55, 0x35);
    expect(flow_hash(frame, n)).toBe(h3);
    expect(h3).not.toBe(h);
  });
  it('hashes the MACs of a frame without an IP flow (ARP)', () => {
    const n = put(frame, ARP);
    const h = flow_hash(frame, n);
    store<u8>(frame + 41, 9); // target IP: not part of the hash
    expect(flow_hash(frame, n)).toBe(h);
    store<u8>(frame + 5, 9); // destination MAC
    expect(flow_hash(frame, n)).not.toBe(h);
  });
  it('reads nothing beyond a frame too short for its headers', () => {
    const n = put(frame, UDP4);
    for (let k: u32 = 0; k < n; k++) flow_hash(frame, k);
    expect(flow_hash(frame, 36)).toBe(flow_hash(frame, 37)); // ports cut short: hashed without them
  });
});
