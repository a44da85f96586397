// Command-line parsing shared by every subcommand: flags declared per command, checked with
// messages that name the option, `--` ending the options (what follows is a command to run).
//
// Owns: one small parser instead of a dependency; flags are bool, string (last one wins) or list
// (repeatable: --label a=1 --label b=2). Unknown options are errors (ERR_UNKNOWN_OPTION), never
// silently ignored, because a typo in `--internal` would otherwise build a network with egress.

import { VxError } from '../errors.js';

export interface FlagDef {
  type: 'bool' | 'string' | 'list';
  short?: string;
  /** Placeholder and description for --help. */
  arg?: string;
  help: string;
}

export type FlagSpec = Record<string, FlagDef>;

export interface Parsed {
  flags: Record<string, string | boolean | string[] | undefined>;
  positional: string[];
  /** What follows `--` (undefined when there was no `--`). */
  rest?: string[];
}

export interface CommandDef {
  /** e.g. 'network create'. */
  name: string;
  usage: string;
  summary: string;
  flags: FlagSpec;
}

export function wantsHelp(argv: string[]): boolean {
  const end = argv.indexOf('--');
  const opts = end < 0 ? argv : argv.slice(0, end);
  return opts.includes('--help') || opts.includes('-h');
}

export function helpText(def: CommandDef): string {
  const lines = [`Usage: vxnet ${def.name} ${def.usage}`, '', def.summary];
  const entries = Object.entries(def.flags);
  if (entries.length > 0) {
    lines.push('', 'Options:');
    for (const [name, f] of entries) {
      const left = `${f.short ? `-${f.short}, ` : '    '}--${name}${f.arg ? ` ${f.arg}` : ''}`;
      lines.push(`  ${left.padEnd(34)} ${f.help}`);
    }
  }
  lines.push(`      --help${' '.repeat(26)} Print this help`);
  return lines.join('\n');
}

export function parseArgs(argv: string[], def: CommandDef): Parsed {
  const flags: Parsed['flags'] = {};
  const positional: string[] = [];
  const byShort = new Map(Object.entries(def.flags).flatMap(([n, f]) => (f.short ? [[f.short, n]] : [])));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return { flags, positional, rest: argv.slice(i + 1) };
    if (!a.startsWith('-') || a === '-') {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const key = a.startsWith('--') ? a.slice(2, eq < 0 ? undefined : eq) : byShort.get(a.slice(1, 2));
    const f = key === undefined ? undefined : def.flags[key];
    if (key === undefined || !f)
      throw new VxError('ERR_UNKNOWN_OPTION', `unknown option ${a} for 'vxnet ${def.name}' (see --help)`);
    let value: string | undefined;
    if (eq >= 0 && a.startsWith('--')) value = a.slice(eq + 1);
    else if (!a.startsWith('--') && a.length > 2) value = a.slice(2);
    if (f.type === 'bool') {
      if (value !== undefined && !['true', 'false'].includes(value))
        throw new VxError('ERR_BAD_OPTION', `--${key} takes no value (or true/false), got "${value}"`);
      flags[key] = value !== 'false';
      continue;
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined || value === '--')
        throw new VxError('ERR_BAD_OPTION', `--${key} needs a value (${f.arg ?? 'VALUE'})`);
    }
    if (f.type === 'list') flags[key] = [...((flags[key] as string[] | undefined) ?? []), value];
    else flags[key] = value;
  }
  return { flags, positional };
}

/** Exactly `n` positional arguments (names them in the error). */
export function positionals(p: Parsed, def: CommandDef, names: string[], o: { min?: number } = {}): string[] {
  const min = o.min ?? names.length;
  if (p.positional.length < min)
    throw new VxError(
      'ERR_BAD_OPTION',
      `'vxnet ${def.name}' needs ${names.slice(p.positional.length).join(' ')}`,
    );
  if (p.positional.length > names.length && names.at(-1)?.endsWith('...') !== true)
    throw new VxError(
      'ERR_BAD_OPTION',
      `'vxnet ${def.name}' takes ${names.join(' ')}; unexpected "${p.positional[names.length]}"`,
    );
  return p.positional;
}

/** key=value pairs of a list flag (--label, --opt); a bare key maps to ''. */
export function keyValues(list: string[] | undefined, option: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list ?? []) {
    const eq = item.indexOf('=');
    const k = eq < 0 ? item : item.slice(0, eq);
    if (k === '') throw new VxError('ERR_BAD_OPTION', `--${option} "${item}" must be KEY or KEY=VALUE`);
    out[k] = eq < 0 ? '' : item.slice(eq + 1);
  }
  return out;
}

export function formatFlag(p: Parsed): 'table' | 'json' {
  const f = p.flags.format;
  if (f === undefined || f === 'table') return 'table';
  if (f === 'json') return 'json';
  throw new VxError('ERR_BAD_OPTION', `--format "${String(f)}" must be "json" or "table"`);
}

export const FORMAT_FLAG: FlagDef = {
  type: 'string',
  arg: 'json|table',
  help: 'Output format (default table)',
};

/** Prints rows as aligned columns. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export interface CliContext {
  /** The daemon client (-H / VXNET_HOST). */
  client(): import('./client.js').Client;
  /** The socket path the global -H chose (for `daemon`, where to listen). */
  host?: string;
}

export interface Command extends CommandDef {
  run(p: Parsed, ctx: CliContext): Promise<number>;
}

/** A command with subcommands (`network create`, `fdb show`). */
export interface Group {
  name: string;
  summary: string;
  commands: Record<string, Command>;
}
