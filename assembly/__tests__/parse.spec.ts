// Known answers for assembly/parse.ts on frames built by scapy (hex below), and the bounds rules:
// every truncation of a valid frame stops with DROP_TRUNCATED, and lying length fields are caught.
// The exhaustive random/property checks against a TypeScript reference are in test/parse.test.ts.
import {
  DROP_MALFORMED,
  DROP_TRUNCATED,
  PARSE_ARP_OP,
  PARSE_DPORT,
  PARSE_ETHERTYPE,
  PARSE_F_ARP,
  PARSE_F_ETH,
  PARSE_F_FRAG,
  PARSE_F_IPV4,
  PARSE_F_IPV6,
  PARSE_F_IPV6_EXT,
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
  PARSE_OK,
  PARSE_PAYLOAD_LEN,
  PARSE_PAYLOAD_OFF,
  PARSE_SPORT,
  PARSE_STATUS,
  PARSE_VLAN,
  PARSE_VLAN_OUTER,
} from '../constants';
import { l2_walk, parse_frame } from '../parse';

const buf = heap.alloc(4096);
const rec = heap.alloc(64);

const UDP4 = '02000000000202000000000108004500002100010000401166c90a0000010a00000204d2162e000d8cff68656c6c6f';
const TCP_VLAN =
  '0200000000020200000000018100006408004500002f00010000400666c60a0000010a0000029c4000500000000000000000600220002c4b0000020405b4474554';
const QINQ_V6 =
  '02000000000202000000000188a8012c8100002a86dd60000000000b1140fd000000000000000000000000000001fd000000000000000000000000000002003514e9000bfe3b78797a';
const ARP = '020000000002020000000001080600010800060400010200000000010a0000010000000000000a000002';
const V6EXT =
  '02000000000202000000000186dd6000000000260040fd000000000000000000000000000001fd0000000000000000000000000000022c000104000000000600000100000007000100020000000000000000500220001b5f00007a7a';
const FRAG4 = '02000000000202000000000108004500001c000100b9401166150a0000010a0000023132333435363738';

function put(hex: string): u32 {
  const n = hex.length >> 1;
  for (let i = 0; i < n; i++) store<u8>(buf + i, <u8>I32.parseInt(hex.substr(i * 2, 2), 16));
  return n;
}

function f(off: u32): u32 {
  return load<u32>(rec + off);
}

/** Every strict prefix of the frame in `buf` parses to a non-OK status or a shallower result. */
function truncations(n: u32, fullFlags: u32): void {
  for (let k: u32 = 0; k < n; k++) {
    const st = parse_frame(buf, k, rec);
    expect(st == PARSE_OK && f(PARSE_FLAGS) == fullFlags).toBe(false);
    if (k < 14) expect(st).toBe(DROP_TRUNCATED);
  }
}

describe('parse_frame on scapy frames', () => {
  it('Ether/IPv4/UDP', () => {
    const n = put(UDP4);
    expect(parse_frame(buf, n, rec)).toBe(PARSE_OK);
    expect(f(PARSE_STATUS)).toBe(PARSE_OK);
    expect(f(PARSE_FLAGS)).toBe(PARSE_F_ETH | PARSE_F_IPV4 | PARSE_F_UDP);
    expect(f(PARSE_ETHERTYPE)).toBe(0x0800);
    expect(f(PARSE_L3_OFF)).toBe(14);
    expect(f(PARSE_L3_LEN)).toBe(33);
    expect(f(PARSE_L4_PROTO)).toBe(17);
    expect(f(PARSE_L4_OFF)).toBe(34);
    expect(f(PARSE_PAYLOAD_OFF)).toBe(42);
    expect(f(PARSE_PAYLOAD_LEN)).toBe(5);
    expect(f(PARSE_SPORT)).toBe(1234);
    expect(f(PARSE_DPORT)).toBe(5678);
    truncations(n, PARSE_F_ETH | PARSE_F_IPV4 | PARSE_F_UDP);
  });
  it('Ether/802.1Q(100)/IPv4/TCP with an MSS option', () => {
    const n = put(TCP_VLAN);
    expect(parse_frame(buf, n, rec)).toBe(PARSE_OK);
    expect(f(PARSE_FLAGS)).toBe(PARSE_F_ETH | PARSE_F_VLAN | PARSE_F_IPV4 | PARSE_F_TCP);
    expect(f(PARSE_VLAN)).toBe(100);
    expect(f(PARSE_L3_OFF)).toBe(18);
    expect(f(PARSE_L4_OFF)).toBe(38);
    expect(f(PARSE_PAYLOAD_OFF)).toBe(62);
    expect(f(PARSE_PAYLOAD_LEN)).toBe(3);
    expect(f(PARSE_SPORT)).toBe(40000);
    expect(f(PARSE_DPORT)).toBe(80);
    truncations(n, f(PARSE_FLAGS));
  });
  it('Ether/802.1ad(300)/802.1Q(42)/IPv6/UDP', () => {
    const n = put(QINQ_V6);
    expect(parse_frame(buf, n, rec)).toBe(PARSE_OK);
    expect(f(PARSE_FLAGS)).toBe(PARSE_F_ETH | PARSE_F_VLAN | PARSE_F_QINQ | PARSE_F_IPV6 | PARSE_F_UDP);
    expect(f(PARSE_VLAN_OUTER)).toBe(300);
    expect(f(PARSE_VLAN)).toBe(42);
    expect(f(PARSE_ETHERTYPE)).toBe(0x86dd);
    expect(f(PARSE_L3_OFF)).toBe(22);
    expect(f(PARSE_L3_LEN)).toBe(51);
    expect(f(PARSE_L4_OFF)).toBe(62);
    expect(f(PARSE_PAYLOAD_LEN)).toBe(3);
    expect(f(PARSE_SPORT)).toBe(53);
    expect(f(PARSE_DPORT)).toBe(5353);
    truncations(n, f(PARSE_FLAGS));
  });
  it('Ether/ARP request', () => {
    const n = put(ARP);
    expect(parse_frame(buf, n, rec)).toBe(PARSE_OK);
    expect(f(PARSE_FLAGS)).toBe(PARSE_F_ETH | PARSE_F_ARP);
    expect(f(PARSE_ARP_OP)).toBe(1);
    expect(f(PARSE_L3_LEN)).toBe(28);
    truncations(n, f(PARSE_FLAGS));
  });
  it('Ether/IPv6/hop-by-hop/fragment(first, M)/TCP', () => {
    const n = put(V6EXT);
    expect(parse_frame(buf, n, rec)).toBe(PARSE_OK);
    expect(f(PARSE_FLAGS)).toBe(PARSE_F_ETH | PARSE_F_IPV6 | PARSE_F_IPV6_EXT | PARSE_F_FRAG | PARSE_F_TCP);
    expect(f(PARSE_L4_PROTO)).toBe(6);
    expect(f(PARSE_L4_OFF)).toBe(14 + 40 + 8 + 8);
    expect(f(PARSE_FRAG_OFF)).toBe(0);
    expect(f(PARSE_SPORT)).toBe(1);
    expect(f(PARSE_DPORT)).toBe(2);
    truncations(n, f(PARSE_FLAGS));
  });
  it('an IPv4 non-first fragment has no L4 header', () => {
    const n = put(FRAG4);
    expect(parse_frame(buf, n, rec)).toBe(PARSE_OK);
    expect(f(PARSE_FLAGS)).toBe(PARSE_F_ETH | PARSE_F_IPV4 | PARSE_F_FRAG);
    expect(f(PARSE_FRAG_OFF)).toBe(185 * 8);
    expect(f(PARSE_L4_OFF)).toBe(0);
    expect(f(PARSE_SPORT)).toBe(0);
  });
  it('l2_walk gives the ethertype and L3 offset after the tags', () => {
    let n = put(QINQ_V6);
    expect(l2_walk(buf, n)).toBe((0x86dd << 16) | 22);
    n = put(UDP4);
    expect(l2_walk(buf, n)).toBe((0x0800 << 16) | 14);
    expect(l2_walk(buf, 13)).toBe(0);
  });
});

describe('lying length fields', () => {
  it('an IPv4 total length beyond the frame is DROP_TRUNCATED', () => {
    const n = put(UDP4);
    store<u16>(buf + 16, bswap<u16>(34));
    expect(parse_frame(buf, n, rec)).toBe(DROP_TRUNCATED);
    store<u16>(buf + 16, 0xffff);
    expect(parse_frame(buf, n, rec)).toBe(DROP_TRUNCATED);
  });
  it('an IPv4 total length below the IHL, or IHL < 5, or version != 4 is DROP_MALFORMED', () => {
    let n = put(UDP4);
    store<u16>(buf + 16, bswap<u16>(19));
    expect(parse_frame(buf, n, rec)).toBe(DROP_MALFORMED);
    n = put(UDP4);
    store<u8>(buf + 14, 0x44);
    expect(parse_frame(buf, n, rec)).toBe(DROP_MALFORMED);
    store<u8>(buf + 14, 0x55);
    expect(parse_frame(buf, n, rec)).toBe(DROP_MALFORMED);
  });
  it('an IHL pointing past the total length is DROP_MALFORMED, past the frame DROP_TRUNCATED', () => {
    const n = put(UDP4);
    store<u8>(buf + 14, 0x4f); // 60-byte header in a 33-byte packet
    expect(parse_frame(buf, n, rec)).toBe(DROP_MALFORMED);
  });
  it('Ethernet padding after the IPv4 total length is not payload', () => {
    const n = put(UDP4);
    memory.fill(buf + n, 0, 13);
    expect(parse_frame(buf, n + 13, rec)).toBe(PARSE_OK);
    expect(f(PARSE_PAYLOAD_LEN)).toBe(5);
  });
  it('a UDP length beyond the IP payload is DROP_TRUNCATED, below 8 DROP_MALFORMED', () => {
    const n = put(UDP4);
    store<u16>(buf + 38, bswap<u16>(14));
    expect(parse_frame(buf, n, rec)).toBe(DROP_TRUNCATED);
    store<u16>(buf + 38, bswap<u16>(7));
    expect(parse_frame(buf, n, rec)).toBe(DROP_MALFORMED);
    store<u16>(buf + 38, bswap<u16>(9));
    expect(parse_frame(buf, n, rec)).toBe(PARSE_OK);
    expect(f(PARSE_PAYLOAD_LEN)).toBe(1);
  });
  it('a TCP data offset below 5 is DROP_MALFORMED, beyond the segment DROP_TRUNCATED', () => {
    const n = put(TCP_VLAN);
    store<u8>(buf + 38 + 12, 0x40);
    expect(parse_frame(buf, n, rec)).toBe(DROP_MALFORMED);
    store<u8>(buf + 38 + 12, 0xf0);
    expect(parse_frame(buf, n, rec)).toBe(DROP_TRUNCATED);
  });
  it('an IPv6 payload length beyond the frame is DROP_TRUNCATED', () => {
    const n = put(QINQ_V6);
    store<u16>(buf + 22 + 4, bswap<u16>(12));
    expect(parse_frame(buf, n, rec)).toBe(DROP_TRUNCATED);
  });
  it('an IPv6 extension header longer than the payload is DROP_TRUNCATED', () => {
    const n = put(V6EXT);
    store<u8>(buf + 54 + 1, 200);
    expect(parse_frame(buf, n, rec)).toBe(DROP_TRUNCATED);
  });
  it('a chain of more than 8 extension headers is DROP_MALFORMED', () => {
    put(V6EXT);
    const l3: u32 = 14;
    store<u16>(buf + l3 + 4, bswap<u16>(9 * 8));
    store<u8>(buf + l3 + 6, 60);
    for (let i: u32 = 0; i < 9; i++) {
      store<u64>(buf + l3 + 40 + i * 8, 0);
      store<u8>(buf + l3 + 40 + i * 8, 60);
    }
    expect(parse_frame(buf, l3 + 40 + 72, rec)).toBe(DROP_MALFORMED);
  });
  it('an ARP with other hardware/protocol sizes is DROP_MALFORMED', () => {
    const n = put(ARP);
    store<u8>(buf + 14 + 4, 8);
    expect(parse_frame(buf, n, rec)).toBe(DROP_MALFORMED);
  });
  it('three VLAN tags: the third is reported as the ethertype, not walked', () => {
    put(TCP_VLAN);
    store<u16>(buf + 12, bswap<u16>(0x8100));
    store<u16>(buf + 16, bswap<u16>(0x8100));
    store<u16>(buf + 20, bswap<u16>(0x8100));
    expect(parse_frame(buf, 64, rec)).toBe(PARSE_OK);
    expect(f(PARSE_ETHERTYPE)).toBe(0x8100);
    expect(f(PARSE_L3_OFF)).toBe(22);
    expect(f(PARSE_FLAGS)).toBe(PARSE_F_ETH | PARSE_F_VLAN | PARSE_F_QINQ);
  });
});
