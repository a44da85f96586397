// Known answers for assembly/aes.ts: FIPS-197 appendix C (AES-128 and AES-256 single blocks), the
// S-box used by the key schedule, and the 8-block CTR-style call with partial lengths.
import { AES_RK_BYTES, aes_encrypt8_xor, aes_expand, sbox_ct } from '../aes';

const buf = heap.alloc(4096);
const rk = heap.alloc(AES_RK_BYTES);
const tmp = heap.alloc(256);

function put(p: usize, hex: string): u32 {
  const n = hex.length >> 1;
  for (let i = 0; i < n; i++) store<u8>(p + i, <u8>I32.parseInt(hex.substr(i * 2, 2), 16));
  return n;
}
function hexOf(p: usize, n: u32): string {
  let s = '';
  for (let i: u32 = 0; i < n; i++) {
    const b = load<u8>(p + i);
    s += (b < 16 ? '0' : '') + b.toString(16);
  }
  return s;
}
/** Encrypts the block at p in place (ECB, one block; the other 7 lanes carry copies). */
function ecb(nr: i32, p: usize): void {
  const b = v128.load(p);
  v128.store(p, aes_encrypt8_xor(rk, nr, b, b, b, b, b, b, b, b, 0, 0, 0));
}

describe('aes_expand + aes_encrypt8_xor', () => {
  it('FIPS-197 C.1: AES-128', () => {
    put(tmp, '000102030405060708090a0b0c0d0e0f');
    expect(aes_expand(rk, tmp, 16, tmp)).toBe(10);
    put(buf, '00112233445566778899aabbccddeeff');
    ecb(10, buf);
    expect(hexOf(buf, 16)).toBe('69c4e0d86a7b0430d8cdb78070b4c55a');
  });
  it('FIPS-197 C.3: AES-256', () => {
    put(tmp, '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
    expect(aes_expand(rk, tmp, 32, tmp)).toBe(14);
    put(buf, '00112233445566778899aabbccddeeff');
    ecb(14, buf);
    expect(hexOf(buf, 16)).toBe('8ea2b7ca516745bfeafc49904b496089');
  });
  it('zeroes the plain key schedule and refuses other key lengths', () => {
    put(tmp, '000102030405060708090a0b0c0d0e0f');
    aes_expand(rk, tmp, 16, tmp);
    let acc: u32 = 0;
    for (let i = 0; i < 176; i++) acc |= load<u8>(tmp + i);
    expect(acc).toBe(0);
    expect(aes_expand(rk, tmp, 24, tmp)).toBe(0);
  });
  it('each of the 8 lanes is an independent block; keystream XOR honours len and first', () => {
    put(tmp, '000102030405060708090a0b0c0d0e0f');
    aes_expand(rk, tmp, 16, tmp);
    const pt = i64x2.splat(0);
    put(buf, '00112233445566778899aabbccddeeff');
    const b = v128.load(buf);
    // Lane 3 holds the FIPS block, the others zero; first = 1 skips lane 0 in the output.
    memory.fill(buf + 16, 0, 128);
    aes_encrypt8_xor(rk, 10, pt, pt, pt, b, pt, pt, pt, pt, buf + 16, 37, 1);
    expect(hexOf(buf + 48, 5)).toBe('69c4e0d86a');
    expect(load<u8>(buf + 16 + 37)).toBe(0); // nothing past len
  });
});

describe('sbox_ct', () => {
  it('matches FIPS-197 figure 7 and is a permutation', () => {
    expect(sbox_ct(0x00)).toBe(0x63);
    expect(sbox_ct(0x01)).toBe(0x7c);
    expect(sbox_ct(0x53)).toBe(0xed);
    expect(sbox_ct(0xff)).toBe(0x16);
    memory.fill(buf, 0, 256);
    for (let i: u32 = 0; i < 256; i++) store<u8>(buf + sbox_ct(i), 1);
    let n: u32 = 0;
    for (let i = 0; i < 256; i++) n += load<u8>(buf + i);
    expect(n).toBe(256);
  });
});
