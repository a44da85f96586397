// Known answers and edge cases for assembly/vxlan.ts (RFC 7348 section 5): the bytes written, the
// strict receive checks (flags other than I, I missing, non-zero reserved bits), and VNI bounds.
import { DROP_TRUNCATED, DROP_VXLAN_FLAGS, DROP_VXLAN_RESERVED } from '../constants';
import { vxlan_read, vxlan_write } from '../vxlan';

const buf = heap.alloc(64);

function hdr(b0: u8, b1: u8, b2: u8, b3: u8, b4: u8, b5: u8, b6: u8, b7: u8): usize {
  store<u8>(buf, b0);
  store<u8>(buf + 1, b1);
  store<u8>(buf + 2, b2);
  store<u8>(buf + 3, b3);
  store<u8>(buf + 4, b4);
  store<u8>(buf + 5, b5);
  store<u8>(buf + 6, b6);
  store<u8>(buf + 7, b7);
  return buf;
}

describe('vxlan_write', () => {
  it('writes 08 00 00 00 | VNI big-endian | 00', () => {
    memory.fill(buf, 0xaa, 16);
    vxlan_write(buf, 0x123456);
    expect(load<u64>(buf)).toBe(0x0056341200000008);
    expect(load<u8>(buf + 8)).toBe(0xaa); // writes exactly 8 bytes
  });
  it('VNI 0 and VNI 0xffffff', () => {
    vxlan_write(buf, 0);
    expect(load<u64>(buf)).toBe(0x0000000000000008);
    vxlan_write(buf, 0xffffff);
    expect(load<u64>(buf)).toBe(0x00ffffff00000008);
  });
  it('round-trips through vxlan_read', () => {
    const vnis: u32[] = [0, 1, 42, 4096, 0x800000, 0xfffffe, 0xffffff];
    for (let i = 0; i < vnis.length; i++) {
      vxlan_write(buf, vnis[i]);
      expect(vxlan_read(buf, 8)).toBe(<i32>vnis[i]);
    }
  });
});

describe('vxlan_read', () => {
  it('reads VNI 0 and 0xffffff', () => {
    expect(vxlan_read(hdr(8, 0, 0, 0, 0, 0, 0, 0), 8)).toBe(0);
    expect(vxlan_read(hdr(8, 0, 0, 0, 0xff, 0xff, 0xff, 0), 8)).toBe(0xffffff);
  });
  it('drops a header shorter than 8 bytes', () => {
    for (let n: u32 = 0; n < 8; n++) expect(vxlan_read(hdr(8, 0, 0, 0, 0, 0, 1, 0), n)).toBe(-DROP_TRUNCATED);
  });
  it('drops when the I flag is missing', () => {
    expect(vxlan_read(hdr(0, 0, 0, 0, 0, 0, 1, 0), 8)).toBe(-DROP_VXLAN_FLAGS);
  });
  it('drops every flag bit other than I (G, A, P, O, version bits)', () => {
    for (let bit = 0; bit < 8; bit++) {
      if (bit == 3) continue;
      expect(vxlan_read(hdr(<u8>(8 | (<i32>1 << bit)), 0, 0, 0, 0, 0, 1, 0), 8)).toBe(-DROP_VXLAN_FLAGS);
    }
  });
  it('drops a non-zero bit in any reserved byte (1, 2, 3 and 7)', () => {
    for (let bit = 0; bit < 8; bit++) {
      const v = <u8>(<i32>1 << bit);
      expect(vxlan_read(hdr(8, v, 0, 0, 0, 0, 1, 0), 8)).toBe(-DROP_VXLAN_RESERVED);
      expect(vxlan_read(hdr(8, 0, v, 0, 0, 0, 1, 0), 8)).toBe(-DROP_VXLAN_RESERVED);
      expect(vxlan_read(hdr(8, 0, 0, v, 0, 0, 1, 0), 8)).toBe(-DROP_VXLAN_RESERVED);
      expect(vxlan_read(hdr(8, 0, 0, 0, 0, 0, 1, v), 8)).toBe(-DROP_VXLAN_RESERVED);
    }
  });
  it('accepts a header longer than 8 bytes (the inner frame follows)', () => {
    expect(vxlan_read(hdr(8, 0, 0, 0, 0, 0x10, 0x01, 0), 1500)).toBe(0x1001);
  });
});
