// TAP offloads for the tunnel endpoint (vnet hdr TSO in, GRO-style coalescing out): placeholder
// until the WASM segmentation lands; the engine runs without offloads meanwhile.
import { VxError } from '../errors.js';
import type { MemView } from '../io/memview.js';
import type { TapDevice } from '../io/tap.js';
import type { UdpBind } from '../io/udp.js';
import type { WasmCore } from '../wasm/module.js';

export interface OffloadHandle {
  hdrArea: number;
}

export class Offload {
  readonly stats = { tsoFrames: 0, tsoSegments: 0, groFrames: 0, groSegments: 0 };
  constructor(
    readonly h: OffloadHandle,
    readonly wasm: WasmCore,
    readonly view: MemView,
  ) {}
  segmentBatch(_descs: number, _n: number, _encap: (descs: number, n: number) => void): void {
    throw new VxError('ERR_VTEP_OFFLOAD', 'offloads are not available yet');
  }
  prepareWrite(_ptr: number): void {}
  flush(_sender: UdpBind, _descs: number, _n: number): void {}
  deliver(
    _descs: number,
    _n: number,
    _tap: (port: number) => TapDevice | undefined,
    _io: { tapTxFrames: number; tapTxErrors: number },
  ): void {}
}

export function offloadRegions(
  wasm: WasmCore,
  o: { outCapacity: number; groCapacity: number },
): OffloadHandle {
  return { hdrArea: wasm.alloc(o.outCapacity * 16 + o.groCapacity * 16) };
}
