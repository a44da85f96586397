// assembly/mem.ts copy_batch: every listed region lands at its destination, byte for byte, and
// nothing around it is touched.
import { copy_batch, vx_alloc } from '../mem';

describe('copy_batch', () => {
  it('gathers a header and a payload into one frame and leaves the guard bytes', () => {
    const src = vx_alloc(4096);
    const dst = vx_alloc(4096);
    const list = vx_alloc(64);
    for (let i = 0; i < 4096; i++) store<u8>(src + i, <u8>(i * 7 + 3));
    memory.fill(dst, 0xee, 4096);
    // header: 50 bytes from src+100; payload: 1400 bytes from src+2000, right after it.
    store<u32>(list, <u32>(dst + 8));
    store<u32>(list, <u32>(src + 100), 4);
    store<u32>(list, 50, 8);
    store<u32>(list, <u32>(dst + 58), 12);
    store<u32>(list, <u32>(src + 2000), 16);
    store<u32>(list, 1400, 20);
    copy_batch(list, 2);
    for (let i = 0; i < 8; i++) expect(load<u8>(dst + i)).toBe(0xee);
    for (let i = 0; i < 50; i++) expect(load<u8>(dst + 8 + i)).toBe(load<u8>(src + 100 + i));
    for (let i = 0; i < 1400; i++) expect(load<u8>(dst + 58 + i)).toBe(load<u8>(src + 2000 + i));
    for (let i = 1458; i < 1600; i++) expect(load<u8>(dst + i)).toBe(0xee);
  });

  it('copies nothing for n = 0', () => {
    const dst = vx_alloc(64);
    memory.fill(dst, 0x5a, 64);
    copy_batch(dst, 0);
    for (let i = 0; i < 64; i++) expect(load<u8>(dst + i)).toBe(0x5a);
  });
});
