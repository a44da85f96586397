// `vxnet keys ls|rotate`: the cluster keys of encrypted overlays (src/daemon/keys.ts).
//
// Owns presentation only: the daemon's GET /keys and POST /keys/rotate. Secrets never reach the
// CLI; it shows key ids, ages, which one is used for sending, and who a rotation waits for.

import { VxError } from '../errors.js';
import { type Command, FORMAT_FLAG, formatFlag, type Group, positionals, table } from './args.js';

interface KeyStatus {
  keys: { id: number; created: string }[];
  primary: number;
  pending: number | null;
  waitingFor: string[];
  rotated?: number;
}

function print(s: KeyStatus, json: boolean): void {
  if (json) {
    console.log(JSON.stringify(s, null, 2));
    return;
  }
  const role = (id: number) => (id === s.primary ? 'primary' : id === s.pending ? 'pending' : 'receive');
  console.log(
    table(
      ['ID', 'CREATED', 'ROLE'],
      s.keys.map((k) => [String(k.id), k.created, role(k.id)]),
    ),
  );
  if (s.waitingFor.length > 0) console.log(`waiting for: ${s.waitingFor.join(', ')}`);
}

const ls: Command = {
  name: 'keys ls',
  usage: '[--format json]',
  summary: 'List the cluster keys (ids and roles, never the secrets)',
  flags: { format: FORMAT_FLAG },
  async run(p, ctx) {
    positionals(p, this, []);
    print(await ctx.client().call<KeyStatus>('GET', '/keys'), formatFlag(p) === 'json');
    return 0;
  },
};

const rotate: Command = {
  name: 'keys rotate',
  usage: '[--timeout SECONDS] [--format json]',
  summary: 'Rotate the cluster key now: returns once every host sends with the new key',
  flags: {
    timeout: { type: 'string', arg: 'SECONDS', help: 'Give up waiting after this long (default 30)' },
    format: FORMAT_FLAG,
  },
  async run(p, ctx) {
    positionals(p, this, []);
    const t = p.flags.timeout as string | undefined;
    if (t !== undefined && !/^[0-9]{1,6}$/.test(t))
      throw new VxError('ERR_BAD_OPTION', `--timeout "${t}" must be a whole number of seconds`);
    const body = t === undefined ? {} : { TimeoutMs: Number(t) * 1000 };
    const s = await ctx.client().call<KeyStatus>('POST', '/keys/rotate', body);
    if (formatFlag(p) !== 'json') console.log(`key ${s.rotated} is now the primary key`);
    print(s, formatFlag(p) === 'json');
    return 0;
  },
};

export const keys: Group = {
  name: 'keys',
  summary: 'Cluster keys of encrypted overlays',
  commands: { ls, rotate },
};
