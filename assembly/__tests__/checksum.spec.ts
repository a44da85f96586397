// Known answers for assembly/checksum.ts: RFC 1071 and RFC 1624 examples, a hand-built IPv4
// header, and UDP/TCP checksums over IPv4 and IPv6 taken from scapy. Checksums are compared in
// memory order (the value `load<u16>` gives for the two wire bytes).
import {
  csum_add,
  csum_fold,
  csum_ipv4_hdr,
  csum_l4_v4,
  csum_l4_v6,
  csum_partial,
  csum_replace16,
  csum_replace32,
  csum_sub,
  csum_tcp4_ok,
  csum_udp4_ok,
  csum_udp_wire,
} from '../checksum';
import { IPPROTO_TCP, IPPROTO_UDP } from '../constants';

const buf = heap.alloc(20000);

function put(p: usize, hex: string): u32 {
  const n = hex.length >> 1;
  for (let i = 0; i < n; i++) store<u8>(p + i, <u8>I32.parseInt(hex.substr(i * 2, 2), 16));
  return n;
}

/** Plain byte-at-a-time big-endian reference, folded and complemented, returned in memory order. */
function ref(p: usize, len: u32): u16 {
  let s: u32 = 0;
  for (let i: u32 = 0; i + 1 < len; i += 2) s += (<u32>load<u8>(p + i) << 8) | load<u8>(p + i + 1);
  if (len & 1) s += <u32>load<u8>(p + len - 1) << 8;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return bswap<u16>(<u16>~s);
}

describe('csum_partial / csum_fold', () => {
  it('RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2, checksum 220d', () => {
    put(buf, '0001f203f4f5f6f7');
    expect(csum_fold(csum_partial(buf, 8, 0))).toBe(<u16>0x0d22);
    const s = csum_partial(buf, 8, 0);
    expect(bswap<u16>(<u16>~csum_fold(s))).toBe(<u16>0xddf2);
  });
  it('is 0xffff (complement of 0) for empty input', () => {
    expect(csum_fold(csum_partial(buf, 0, 0))).toBe(<u16>0xffff);
  });
  it('pads an odd last byte with zero', () => {
    put(buf, 'ab');
    expect(csum_fold(csum_partial(buf, 1, 0))).toBe(bswap<u16>(<u16>~0xab00));
  });
  it('matches the byte-wise reference at every length 0..300 and odd addresses', () => {
    for (let i = 0; i < 1200; i++) store<u8>(buf + i, <u8>(i * 131 + 7));
    for (let off: u32 = 0; off < 3; off++) {
      for (let len: u32 = 0; len <= 300; len++) {
        expect(csum_fold(csum_partial(buf + off, len, 0))).toBe(ref(buf + off, len));
      }
    }
  });
  it('survives all-0xff input past the u32 lane limit (64 KiB + 1)', () => {
    memory.fill(buf, 0xff, 20000);
    // A sum of 0xffff words is 0xffff: checksum 0.
    expect(csum_fold(csum_partial(buf, 20000, 0))).toBe(0);
    expect(csum_fold(csum_partial(buf, 19999, 0))).toBe(ref(buf, 19999));
  });
  it('chains: a sum over two even-length parts equals the sum over the whole', () => {
    for (let i = 0; i < 1000; i++) store<u8>(buf + i, <u8>(i * 37));
    const whole = csum_fold(csum_partial(buf, 1000, 0));
    expect(csum_fold(csum_partial(buf + 200, 800, csum_partial(buf, 200, 0)))).toBe(whole);
    expect(csum_fold(csum_add(csum_partial(buf, 200, 0), csum_partial(buf + 200, 800, 0)))).toBe(whole);
    expect(csum_fold(csum_sub(csum_partial(buf, 1000, 0), csum_partial(buf, 200, 0)))).toBe(
      csum_fold(csum_partial(buf + 200, 800, 0)),
    );
  });
});

describe('RFC 1624 incremental update', () => {
  it('section 4 example: HC 0xdd2f, m 0x5555 -> 0x3285 gives 0x0000', () => {
    expect(csum_replace16(0xdd2f, 0x5555, 0x3285)).toBe(0);
  });
  it('csum_replace32 matches a recompute after changing an IPv4 address', () => {
    put(buf, '450000730000400040110000c0a80001c0a800c7');
    store<u16>(buf + 10, csum_ipv4_hdr(buf));
    const old = load<u32>(buf + 16);
    store<u32>(buf + 16, 0x0102000a); // 10.0.2.1
    const upd = csum_replace32(load<u16>(buf + 10), old, load<u32>(buf + 16));
    store<u16>(buf + 10, 0);
    expect(upd).toBe(csum_ipv4_hdr(buf));
  });
  it('csum_replace16 matches a recompute after a TTL decrement', () => {
    put(buf, '450000730000400040110000c0a80001c0a800c7');
    store<u16>(buf + 10, csum_ipv4_hdr(buf));
    const old = load<u16>(buf + 8);
    store<u8>(buf + 8, 0x3f);
    const upd = csum_replace16(load<u16>(buf + 10), old, load<u16>(buf + 8));
    store<u16>(buf + 10, 0);
    expect(upd).toBe(csum_ipv4_hdr(buf));
  });
});

describe('IPv4 header checksum', () => {
  it('a hand-built header (192.168.0.1 -> 192.168.0.199, UDP, len 0x73) has checksum b861', () => {
    put(buf, '450000730000400040110000c0a80001c0a800c7');
    expect(csum_ipv4_hdr(buf)).toBe(<u16>0x61b8);
    store<u16>(buf + 10, 0x61b8);
    expect(csum_ipv4_hdr(buf)).toBe(0);
  });
  it('covers options (IHL 6)', () => {
    put(buf, '460000780000400040110000c0a80001c0a800c701010100');
    const c = csum_ipv4_hdr(buf);
    expect(c).toBe(ref(buf, 24));
    store<u16>(buf + 10, c);
    expect(csum_ipv4_hdr(buf)).toBe(0);
  });
});

describe('UDP/TCP with pseudo-headers (known answers from scapy)', () => {
  it('UDP over IPv4: 10.0.0.1:1234 -> 10.0.0.2:5678 "hello" is 8cff', () => {
    const n = put(buf, '4500002100010000401166c90a0000010a00000204d2162e000d8cff68656c6c6f');
    expect(csum_udp4_ok(buf, buf + 20, n - 20)).toBe(true);
    store<u16>(buf + 26, 0);
    expect(csum_l4_v4(buf, IPPROTO_UDP, buf + 20, n - 20)).toBe(<u16>0xff8c);
    // A zero field means "no checksum" and is accepted.
    expect(csum_udp4_ok(buf, buf + 20, n - 20)).toBe(true);
    store<u16>(buf + 26, 0x1234);
    expect(csum_udp4_ok(buf, buf + 20, n - 20)).toBe(false);
  });
  it('TCP over IPv4: SYN 1234 -> 80 "abc" is b257', () => {
    const n = put(buf, '4500002b00010000400666ca0a0000010a00000204d20050000000010000000050022000b2570000616263');
    expect(csum_tcp4_ok(buf, buf + 20, n - 20)).toBe(true);
    store<u16>(buf + 36, 0);
    expect(csum_l4_v4(buf, IPPROTO_TCP, buf + 20, n - 20)).toBe(<u16>0x57b2);
  });
  it('UDP over IPv6: fe80::1 -> fe80::2 "hello" is a3fd', () => {
    const n = put(
      buf,
      '60000000000d1140fe800000000000000000000000000001fe80000000000000000000000000000204d2162e000da3fd68656c6c6f',
    );
    expect(csum_l4_v6(buf, IPPROTO_UDP, buf + 40, n - 40)).toBe(0);
    store<u16>(buf + 46, 0);
    expect(csum_l4_v6(buf, IPPROTO_UDP, buf + 40, n - 40)).toBe(<u16>0xfda3);
  });
  it('a computed UDP checksum of 0 goes on the wire as 0xffff', () => {
    expect(csum_udp_wire(0)).toBe(<u16>0xffff);
    expect(csum_udp_wire(0x1234)).toBe(<u16>0x1234);
  });
});
