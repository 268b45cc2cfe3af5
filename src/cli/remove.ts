import type { Command } from 'commander';
import { hasCode, NotFoundError, UsageError } from '../core/errors.js';
import { splitObjectPath, validateBucketName } from '../core/names.js';
import { parseObjectPath } from './object.js';
import { escapeName, printJson } from './output.js';
import { type Target, withTarget } from './target.js';

/** Deletes at once: enough to hide the metadata round trip, few enough to stay polite to a server. */
const PARALLEL = 8;

/** Every key `rm -r BUCKET/NAME` removes: NAME itself and everything under NAME/ (all of the bucket for ''). */
async function keysUnder(target: Target, bucket: string, name: string): Promise<string[]> {
  const prefix = name === '' ? '' : `${name}/`;
  const keys: string[] = [];
  let continuation: string | undefined;
  do {
    const page = await target.list(bucket, { prefix, recursive: true, continuation });
    for (const o of page.objects) keys.push(o.key);
    continuation = page.continuation;
  } while (continuation);
  if (name !== '') {
    // NAME itself, when it is an object (a file, or a symlink): rm -r photos removes the file "photos" too.
    const exact = await target.statObject(bucket, name).catch((err: unknown) => {
      if (hasCode(err, 'NOT_FOUND')) return undefined;
      throw err;
    });
    if (exact) keys.push(name);
  }
  // Deepest first: a folder's marker ("a/") goes after what it holds.
  return keys.sort().reverse();
}

async function removeAll(target: Target, bucket: string, keys: string[]): Promise<number> {
  let removed = 0;
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const key = keys[next++]!;
      try {
        await target.deleteObject(bucket, key);
        removed++;
      } catch (err) {
        // Removed by someone else meanwhile: what was asked is done.
        if (!hasCode(err, 'NOT_FOUND')) throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, keys.length) }, worker));
  return removed;
}

export function registerRemoveCommand(program: Command): void {
  program
    .command('rm <object>')
    .description(
      'remove BUCKET/KEY; with -r, BUCKET/NAME and everything under NAME/ (chunks go after the gc grace period)',
    )
    .option('-r, --recursive', 'remove NAME and every key under NAME/')
    .option('--all', 'with -r and a bare BUCKET: remove every object of the bucket (the bucket stays)')
    .option('--json', 'print {bucket, prefix, removed} as JSON on stdout')
    .action(async (path: string, options: { recursive?: boolean; all?: boolean; json?: boolean }, command: Command) => {
      if (!options.recursive) {
        if (options.all) throw new UsageError('--all goes with -r');
        const { bucket, key } = parseObjectPath(path);
        await withTarget(command, async (target) => {
          await target.deleteObject(bucket, key);
          if (options.json) printJson({ bucket, prefix: key, removed: 1 });
          else console.error(`removed ${bucket}/${escapeName(key)}`);
        });
        return;
      }
      const { bucket, key } = splitObjectPath(path);
      validateBucketName(bucket);
      const name = key.replace(/\/+$/, '');
      if (name === '' && !options.all) {
        throw new UsageError(
          `rm -r ${bucket} would remove every object of bucket ${bucket}: add --all if that is what you mean`,
        );
      }
      await withTarget(command, async (target) => {
        const keys = await keysUnder(target, bucket, name);
        if (keys.length === 0)
          throw new NotFoundError(
            name === ''
              ? `nothing to remove: bucket ${bucket} is empty`
              : `nothing to remove: no object ${bucket}/${escapeName(name)} or under it`,
          );
        const removed = await removeAll(target, bucket, keys);
        const shown = name === '' ? `bucket ${bucket}` : `${bucket}/${escapeName(name)}`;
        if (options.json) printJson({ bucket, prefix: name, removed });
        else console.error(`removed ${removed} object(s) from ${shown}`);
      });
    });
}
