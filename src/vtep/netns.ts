// Opening a file descriptor inside another network namespace, from this process.
//
// Owns: the setns(2) dance for the tunnel engine. A socket belongs to the namespace it was
// created in, and TUNSETIFF makes the TAP in the namespace of the calling thread; both keep
// working after the thread goes back. So the engine can bind its data-path socket in a simulated
// host's namespace and make each network's TAP straight inside that network's sandbox, while the
// process (the daemon) stays where it is. Node has no setns, koffi reaches libc's. setns with
// CLONE_NEWNET is per thread and allowed in a multi-threaded process; the switch lasts only for
// the synchronous `fn`, so no other JavaScript runs in the foreign namespace.
import koffi from 'koffi';
import { VxError } from '../errors.js';
import { O_CLOEXEC, sys } from '../io/libc.js';
import { checkNetnsName } from '../kernel/exec.js';

const CLONE_NEWNET = 0x40000000;
let setns: ((fd: number, type: number) => number) | undefined;

/** Runs `fn` with this thread in network namespace `name` (/run/netns/NAME); as is when undefined. */
export function inNetns<T>(name: string | undefined, fn: () => T): T {
  if (name === undefined) return fn();
  checkNetnsName(name);
  setns ??= koffi.load('libc.so.6').func('int setns(int fd, int nstype)');
  const self = sys.open('/proc/thread-self/ns/net', O_CLOEXEC, 0);
  if (self < 0)
    throw new VxError('ERR_NETNS', `cannot open this thread's namespace (errno ${koffi.errno()})`);
  try {
    const target = sys.open(`/run/netns/${name}`, O_CLOEXEC, 0);
    if (target < 0) throw new VxError('ERR_NETNS_NOT_FOUND', `network namespace "${name}" not found`);
    try {
      if (setns(target, CLONE_NEWNET) !== 0) {
        throw new VxError('ERR_NETNS', `cannot enter network namespace "${name}" (errno ${koffi.errno()})`);
      }
    } finally {
      sys.close(target);
    }
    let result: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      result = { ok: true, value: fn() };
    } catch (error) {
      result = { ok: false, error };
    }
    // Staying in the wrong namespace would misplace every later socket: this error wins.
    if (setns(self, CLONE_NEWNET) !== 0) {
      throw new VxError('ERR_NETNS', `cannot return from network namespace "${name}"`);
    }
    if (!result.ok) throw result.error;
    return result.value;
  } finally {
    sys.close(self);
  }
}
