import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { UsageError } from '../core/errors.js';
import { EXIT_FAILED, EXIT_USAGE } from './failure.js';
import { buildProgram, main } from './main.js';

/**
 * mount.lilio: the helper mount(8) runs for an /etc/fstab line such as
 *
 *   lilio#/etc/lilio/config.json  /mnt/lilio  fuse.lilio  defaults,_netdev,allow_other  0 0
 *
 * (installed as /sbin/mount.fuse.lilio, and /sbin/mount.lilio for type "lilio").
 * mount(8) calls it as `mount.fuse.lilio SOURCE MOUNTPOINT [-sfnv] [-o OPTIONS]`
 * with PATH and HOME removed; bin/mount.lilio restores a PATH and runs this.
 * SOURCE is the config file, with or without "lilio#" ("lilio" alone: the
 * embedded default). The mount options become `lilio mount` flags; the helper
 * returns once the directory is mounted, the mount process staying behind.
 */

/** Options of mount(8) and fstab that concern the kernel or mount(8) itself, not Lilio: accepted, not passed on. */
const GENERIC = new Set([
  'defaults',
  'rw',
  'auto',
  'noauto',
  'user',
  'nouser',
  'users',
  'owner',
  'group',
  '_netdev',
  'nofail',
  'exec',
  'noexec',
  'suid',
  'nosuid',
  'dev',
  'nodev',
  'atime',
  'noatime',
  'relatime',
  'norelatime',
  'strictatime',
  'nodiratime',
  'async',
  'sync',
  'dirsync',
  'loud',
  'silent',
]);

export interface HelperCall {
  /** The `lilio ...` arguments (without node and the script). */
  argv: string[];
  /** $LILIO_HOME from home=DIR: at boot, mount(8) gives the helper no HOME. */
  home?: string;
  /** -f: check everything, mount nothing (mount --fake). */
  fake: boolean;
}

function longOption(command: Command, name: string) {
  return command.options.find((o) => o.long === `--${name}`);
}

/** Translates mount(8)'s call into `lilio [--config FILE] mount MOUNTPOINT FLAGS`. */
export function translateMountCall(args: string[], program: Command = buildProgram()): HelperCall {
  const positional: string[] = [];
  const options: string[] = [];
  let fake = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '-o') {
      const value = args[++i];
      if (value === undefined) throw new UsageError('-o needs a list of options');
      options.push(...value.split(',').filter((o) => o !== ''));
    } else if (arg.startsWith('-o')) options.push(...arg.slice(2).split(','));
    else if (arg === '-t')
      i++; // The type (fuse.lilio): that is why we were called.
    else if (arg === '-f') fake = true;
    else if (arg === '-n' || arg === '-s' || arg === '-v')
      continue; // No mtab; sloppy; verbose.
    else if (arg.startsWith('-')) throw new UsageError(`unknown argument ${arg}`);
    else positional.push(arg);
  }
  if (positional.length !== 2) throw new UsageError('usage: mount.lilio [lilio#]CONFIG MOUNTPOINT [-o OPTIONS]');
  const [source, mountpoint] = positional as [string, string];
  const config = source.replace(/^lilio#/, '');
  const mount = program.commands.find((c) => c.name() === 'mount')!;
  const global: string[] = [];
  const flags: string[] = [];
  let home: string | undefined;
  for (const option of options) {
    const eq = option.indexOf('=');
    const name = eq < 0 ? option : option.slice(0, eq);
    const value = eq < 0 ? undefined : option.slice(eq + 1);
    if (GENERIC.has(name) || name.startsWith('x-') || name === 'comment') continue;
    if (name === 'home' && value) {
      home = value;
      continue;
    }
    if (name === 'ro') {
      flags.push('--read-only');
      continue;
    }
    if (name === 'noxattrs') {
      flags.push('--no-xattrs');
      continue;
    }
    // Anything else is a `lilio mount` option, or a global one, spelled with _ for -:
    // allow_other, cache_size=256MiB, metrics_port=9101, fuse=native, metadata=etcd, ...
    const long = name.replaceAll('_', '-');
    const own = longOption(mount, long);
    const shared = own ? undefined : longOption(program, long);
    const known = own ?? shared;
    if (!known || long === 'foreground' || long === 'config' || long === 'endpoint')
      throw new UsageError(`unknown mount option "${option}"`);
    const takesValue = known.required || known.optional;
    if (takesValue && value === undefined) throw new UsageError(`mount option ${name} needs a value (${name}=...)`);
    if (!takesValue && value !== undefined) throw new UsageError(`mount option ${name} takes no value`);
    (own ? flags : global).push(`--${long}`, ...(value === undefined ? [] : [value]));
  }
  const configArgs = config === '' || config === 'lilio' ? [] : ['--config', config];
  return { argv: [...configArgs, ...global, 'mount', mountpoint, ...flags], home, fake };
}

/**
 * Runs as mount(8)'s helper. Exit statuses follow mount(8): 1 for a wrong
 * call (bad options), 32 for a mount that failed.
 */
export async function helperMain(args: string[], lilioBin: string): Promise<number> {
  let call: HelperCall;
  try {
    call = translateMountCall(args);
  } catch (err) {
    process.stderr.write(`mount.lilio: ${(err as Error).message}\n`);
    return 1;
  }
  if (call.home) process.env.LILIO_HOME = call.home;
  if (call.fake) return 0;
  const status = await main([process.execPath, lilioBin, ...call.argv]);
  return status === 0 ? 0 : status === EXIT_USAGE ? 1 : status === EXIT_FAILED ? 32 : status;
}

// Run by bin/mount.lilio: node dist/cli/mount-helper.js BIN_LILIO ARGS...
if (process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))) {
  const [lilioBin, ...args] = process.argv.slice(2);
  process.exitCode = await helperMain(args, lilioBin!);
}
