// The event ring: L2/L3 misses and learned peers, written by the datapath, drained by the host.
//
// A ring of CTX_EVENT_SLOTS fixed-size records with free-running head (WASM) and tail (host)
// counters in the context. It is bounded: when full, new events are counted in CTX_EVENT_LOST and
// dropped, so a miss storm costs a counter, not memory. A repeat of the newest undrained event is
// not written again (a burst of frames to one unknown MAC raises one event per batch).
import { CTX_EVENT_HEAD, CTX_EVENT_LOST, CTX_EVENT_SLOTS, CTX_EVENT_TAIL, CTX_EVENTS, EVT_SIZE } from './constants';

export function event_push(ctx: usize, type: u32, vni: u32, data: u64): void {
  const head = load<u32>(ctx, CTX_EVENT_HEAD);
  const tail = load<u32>(ctx, CTX_EVENT_TAIL);
  const mask = load<u32>(ctx, CTX_EVENT_SLOTS) - 1;
  const base = load<usize>(ctx, CTX_EVENTS);
  if (head != tail) {
    const last = base + <usize>((head - 1) & mask) * EVT_SIZE;
    if (load<u32>(last) == type && load<u32>(last, 4) == vni && load<u64>(last, 8) == data) return;
  }
  if (head - tail > mask) {
    store<u32>(ctx, load<u32>(ctx, CTX_EVENT_LOST) + 1, CTX_EVENT_LOST);
    return;
  }
  const e = base + <usize>(head & mask) * EVT_SIZE;
  store<u32>(e, type);
  store<u32>(e, vni, 4);
  store<u64>(e, data, 8);
  store<u32>(ctx, head + 1, CTX_EVENT_HEAD);
}
