// Scheduling class of the calling thread: the tunnel's I/O thread may ask for SCHED_RR so a frame
// waiting for it does not also wait behind every runnable CFS task (each RTT crosses four
// wake-ups of I/O threads; on a busy 2-core host those waits, not the packet work, were the RTT).
// It never busy-polls, so it only takes the CPU while there are packets to move.
import koffi from 'koffi';
import { VxError } from '../errors.js';

const SCHED_RR = 2;
let setScheduler: ((pid: number, policy: number, param: Buffer) => number) | undefined;

/** Puts the calling thread in SCHED_RR at `priority` (1..99). Throws ERR_SCHED when refused. */
export function setRealtime(priority: number): void {
  if (!Number.isInteger(priority) || priority < 1 || priority > 99) {
    throw new VxError('ERR_INVALID_ARG', `realtime priority must be an integer in 1..99, got ${priority}`);
  }
  setScheduler ??= koffi.load('libc.so.6').func('int sched_setscheduler(int pid, int policy, void *param)');
  const param = Buffer.alloc(4);
  param.writeInt32LE(priority);
  if (setScheduler(0, SCHED_RR, param) !== 0) {
    throw new VxError(
      'ERR_SCHED',
      `sched_setscheduler(SCHED_RR, ${priority}) failed (errno ${koffi.errno()})`,
    );
  }
}
