// Typed views over a shared WebAssembly.Memory that follow its growth.
//
// Owns nothing but the views: a seam calls `u32()` at the top of each batch and never keeps the
// view across a call that may grow memory (another thread may grow a shared memory at any time;
// the old, shorter view then stays valid for the bytes it covers, so a stale view is only too short).
export class MemView {
  private len = -1;
  private u32v = new Uint32Array(0);
  private u16v = new Uint16Array(0);
  private u8v = new Uint8Array(0);
  constructor(readonly memory: WebAssembly.Memory) {}

  private refresh(): void {
    const buf = this.memory.buffer;
    if (buf.byteLength !== this.len) {
      this.len = buf.byteLength;
      this.u32v = new Uint32Array(buf);
      this.u16v = new Uint16Array(buf);
      this.u8v = new Uint8Array(buf);
    }
  }

  u32(): Uint32Array {
    this.refresh();
    return this.u32v;
  }

  u16(): Uint16Array {
    this.refresh();
    return this.u16v;
  }

  u8(): Uint8Array {
    this.refresh();
    return this.u8v;
  }
}
