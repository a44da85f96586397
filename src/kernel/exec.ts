// Running the kernel's command-line tools (ip, nft, sysctl), in the root namespace or inside a
// named one, with argument arrays (never a shell).
//
// Owns: turning a failed command into a VxError that names the object and what was being done
// ("could not add link "br0" in netns "h1": File exists"), with a code the caller can act on:
// ERR_NETNS_NOT_FOUND, ERR_LINK_NOT_FOUND, or ERR_KERNEL. The tool's stderr is kept on the error
// (`stderr`) so idempotent callers can recognise EEXIST / ENOENT and go on, as CNI plugins do.
// Node cannot setns(), so work inside a namespace is `ip -n NS ...` or `ip netns exec NS cmd`.

import { execFile } from 'node:child_process';
import { VxError } from '../errors.js';
import { Spawner } from './spawner.js';

export interface Where {
  /** Named network namespace (`ip netns`); the current one when absent. */
  netns?: string;
}

export interface RunOptions extends Where {
  /** What is being done, for the error message: e.g. `add link "br0"`. */
  action: string;
  /** Data written to the command's stdin (nft -f -, ip -batch -). */
  input?: string;
  timeoutMs?: number;
}

export class KernelError extends VxError {
  readonly stderr: string;
  constructor(
    code: 'ERR_KERNEL' | 'ERR_NETNS_NOT_FOUND' | 'ERR_LINK_NOT_FOUND',
    message: string,
    stderr: string,
  ) {
    super(code, message);
    this.stderr = stderr;
  }
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const IFNAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;

export function checkNetnsName(name: unknown): string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new VxError(
      'ERR_BAD_NAME',
      `namespace name "${String(name)}" must be 1-64 of [A-Za-z0-9_.-], not starting with . or -`,
    );
  }
  return name;
}

export function checkIfName(name: unknown): string {
  if (typeof name !== 'string' || !IFNAME.test(name)) {
    throw new VxError(
      'ERR_BAD_NAME',
      `interface name "${String(name)}" must be 1-15 of [A-Za-z0-9_.-], not starting with . or -`,
    );
  }
  return name;
}

function where(opts: Where): string {
  return opts.netns === undefined ? '' : ` in netns "${opts.netns}"`;
}

function classify(stderr: string): 'ERR_KERNEL' | 'ERR_NETNS_NOT_FOUND' | 'ERR_LINK_NOT_FOUND' {
  if (/Cannot open network namespace|network namespace .* not found/i.test(stderr))
    return 'ERR_NETNS_NOT_FOUND';
  if (/Cannot find device|does not exist|No such device/.test(stderr)) return 'ERR_LINK_NOT_FOUND';
  return 'ERR_KERNEL';
}

/** Runs `cmd args` (inside `opts.netns` via `ip netns exec` when given); resolves stdout. */
export function run(cmd: string, args: string[], opts: RunOptions): Promise<string> {
  const argv =
    opts.netns === undefined
      ? [cmd, ...args]
      : ['ip', 'netns', 'exec', checkNetnsName(opts.netns), cmd, ...args];
  return spawnTool(argv, opts);
}

/**
 * Runs `ip [-n netns] args`; resolves stdout. Through the spawn helper, a namespace's command is
 * forked from inside it instead (spawner.ts: `-n` copies the mount table on every command).
 */
export function ip(args: string[], opts: RunOptions): Promise<string> {
  if (opts.netns !== undefined && helper) {
    checkNetnsName(opts.netns);
    return spawnTool(['ip', ...args], opts, opts.netns);
  }
  const ns = opts.netns === undefined ? [] : ['-n', checkNetnsName(opts.netns)];
  return spawnTool(['ip', ...ns, ...args], opts);
}

/** Runs `ip -j [-n netns] args` and parses its JSON (empty output = []). */
export async function ipJson<T>(args: string[], opts: RunOptions): Promise<T[]> {
  const out = await ip(['-j', ...args], opts);
  return out.trim() === '' ? [] : (JSON.parse(out) as T[]);
}

/** Runs many `ip` commands in one process (`ip -batch -`): one fork instead of one per command. */
export function ipBatch(commands: string[][], opts: RunOptions): Promise<string> {
  for (const c of commands) {
    for (const a of c)
      if (/[\s"'\\#]/.test(a) || a === '')
        throw new VxError('ERR_KERNEL', `ip batch argument "${a}" is unsafe`);
  }
  return ip(['-batch', '-'], { ...opts, input: `${commands.map((c) => c.join(' ')).join('\n')}\n` });
}

let helper: Spawner | undefined;

/**
 * From now on commands are forked by a small helper process (spawner.ts), not by this one: for a
 * long-running process with a large heap (the daemon), whose every fork would block it. Returns
 * the function that stops the helper (later commands fork directly again).
 */
export function useSpawnHelper(): () => void {
  const h = new Spawner();
  helper = h;
  return () => {
    if (helper === h) helper = undefined;
    h.close();
  };
}

/** The spawn helper when one was started (useSpawnHelper), for long-running processes (procs.ts). */
export function spawnHelper(): Spawner | undefined {
  return helper;
}

function spawnTool(argv: string[], opts: RunOptions, inNetns?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, stdout: string, stderr: string) => {
      if (!err) return resolve(stdout);
      const detail = (stderr || err.message).trim().split('\n').slice(-3).join('; ');
      const msg = `could not ${opts.action}${where(opts)}: ${detail}`;
      reject(new KernelError(classify(stderr), msg, stderr));
    };
    const timeoutMs = opts.timeoutMs ?? 15000;
    if (helper) return helper.run(argv, { input: opts.input, timeoutMs, netns: inNetns }, done);
    const child = execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs, maxBuffer: 64 << 20 }, done);
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** True when a failed command said the object already exists (EEXIST). */
export function isExists(e: unknown): boolean {
  return e instanceof KernelError && /File exists|already assigned|already exists/i.test(e.stderr);
}

/** True when a failed command said the object is not there (ENOENT, ENODEV, ESRCH, EADDRNOTAVAIL). */
export function isMissing(e: unknown): boolean {
  return (
    e instanceof KernelError &&
    (e.code !== 'ERR_KERNEL' ||
      /No such (file|process|device)|not found|Cannot assign requested/i.test(e.stderr))
  );
}

/** Sets a sysctl (e.g. net.ipv4.ip_forward) in a namespace: sysctls under net. are per namespace. */
export async function sysctl(key: string, value: string | number, opts: Where = {}): Promise<void> {
  if (!/^[a-z0-9_.]+$/i.test(key)) throw new VxError('ERR_KERNEL', `sysctl key "${key}" is malformed`);
  await run('sysctl', ['-q', '-w', `${key}=${value}`], { ...opts, action: `set sysctl ${key}=${value}` });
}
