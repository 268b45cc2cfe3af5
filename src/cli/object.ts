import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { formatSize } from '../config/size.js';
import { InvalidError, IsDirError, UsageError } from '../core/errors.js';
import { splitObjectPath, validateBucketName, validateKey } from '../core/names.js';
import { openDownload } from './download.js';
import { localFileError } from './local-errors.js';
import { escapeName, printJson } from './output.js';
import { Progress } from './progress.js';
import { withTarget } from './target.js';

/** BUCKET/KEY with both parts required and valid. */
export function parseObjectPath(text: string): { bucket: string; key: string } {
  const { bucket, key } = splitObjectPath(text);
  validateBucketName(bucket);
  if (!key) throw new InvalidError(`"${text}" names no object: use BUCKET/KEY`);
  validateKey(key);
  return { bucket, key };
}

/** Reads from a source while counting bytes for the progress bar. */
async function* counted(source: AsyncIterable<Uint8Array>, progress: Progress): AsyncGenerator<Uint8Array> {
  for await (const piece of source) {
    progress.advance(piece.byteLength);
    yield piece;
  }
}

interface TransferFlags {
  json?: boolean;
  /** false with --no-progress. */
  progress: boolean;
}

export function registerObjectCommands(program: Command): void {
  program
    .command('put <local> <object>')
    .description('upload a local file (or - for stdin) to BUCKET/KEY')
    .option('--json', 'print {bucket, key, size, chunks} as JSON on stdout')
    .option('--no-progress', 'no progress bar (drawn only on a terminal anyway)')
    .action(async (local: string, target: string, options: TransferFlags, command: Command) => {
      const { bucket, key } = parseObjectPath(target);
      const info =
        local === '-'
          ? undefined
          : await stat(local).catch((err: unknown) => Promise.reject(localFileError(err, local)));
      if (info?.isDirectory()) throw new IsDirError(`${local} is a directory: put takes one file`);
      const size = info?.size;
      const source = local === '-' ? process.stdin : createReadStream(local, { highWaterMark: 1024 * 1024 });
      await withTarget(command, async (target) => {
        const progress = new Progress(`put ${escapeName(key)}`, size, { enabled: options.progress });
        const stored = await target
          .putObject(bucket, key, counted(source, progress), size)
          .finally(() => progress.finish());
        if (options.json) printJson({ bucket, key, size: stored.size, chunks: stored.chunks });
        else
          console.error(`stored ${bucket}/${escapeName(key)}: ${formatSize(stored.size)} in ${stored.chunks} chunk(s)`);
      });
    });

  program
    .command('get <object> <local>')
    .description('download BUCKET/KEY to a local file, into a directory as DIR/BASENAME, or to stdout (-)')
    .option('--json', 'print {bucket, key, size, path} as JSON on stdout (not with - as the target)')
    .option('--no-progress', 'no progress bar (drawn only on a terminal anyway)')
    .action(async (source: string, local: string, options: TransferFlags, command: Command) => {
      const { bucket, key } = parseObjectPath(source);
      if (options.json && local === '-') throw new UsageError('--json: stdout carries the object with -; name a file');
      // The target is opened first: one that cannot be written fails before anything is downloaded.
      const sink = local === '-' ? undefined : await openDownload(local, key);
      try {
        await withTarget(command, async (target) => {
          const object = await target.getObject(bucket, key);
          // To a terminal's stdout the bar would be drawn into the object itself, as curl knows.
          const enabled = options.progress && !(sink === undefined && process.stdout.isTTY);
          const progress = new Progress(`get ${escapeName(key)}`, object.size, { enabled });
          const body = counted(object.body, progress);
          try {
            if (sink) {
              await pipeline(body, sink.stream).catch((err: unknown) => {
                // Only a failed write is about the local file; a failed read is the object's (or the server's).
                throw (err as NodeJS.ErrnoException).syscall === 'write' ? localFileError(err, sink.path) : err;
              });
              await sink.commit();
            } else {
              await pipeline(body, process.stdout);
            }
          } finally {
            progress.finish();
          }
          if (options.json) printJson({ bucket, key, size: object.size, path: sink?.path });
        });
      } catch (err) {
        await sink?.abort();
        throw err;
      }
    });

  program
    .command('cat <objects...>')
    .description('write BUCKET/KEY (several: one after the other) to stdout')
    .action(async (sources: string[], _options: unknown, command: Command) => {
      const objects = sources.map(parseObjectPath);
      await withTarget(command, async (target) => {
        for (const { bucket, key } of objects) {
          const object = await target.getObject(bucket, key);
          // end: false keeps stdout open for the next object; a reader that went away (| head) ends quietly.
          await pipeline(object.body, process.stdout, { end: false });
        }
      });
    });

  program
    .command('cp <source> <destination>')
    .description('copy BUCKET/KEY to BUCKET/KEY (the same or another bucket); the copy has chunks of its own')
    .option('--json', 'print {source, destination, size, chunks} as JSON on stdout')
    .option('--no-progress', 'no progress bar (drawn only on a terminal anyway)')
    .action(async (source: string, destination: string, options: TransferFlags, command: Command) => {
      const from = parseObjectPath(source);
      let to = splitObjectPath(destination);
      validateBucketName(to.bucket);
      // BUCKET or BUCKET/DIR/ as the destination keeps the source's base name, as cp into a directory does.
      if (to.key === '' || to.key.endsWith('/')) to = { bucket: to.bucket, key: to.key + basename(from.key) };
      validateKey(to.key);
      if (from.bucket === to.bucket && from.key === to.key)
        throw new UsageError(`cp: ${source} and ${destination} are the same object`);
      await withTarget(command, async (target) => {
        let progress: Progress | undefined;
        let copied: { size: number; chunks: number };
        try {
          copied = await target.copyObject(from, to, (size, body) => {
            progress = new Progress(`cp ${escapeName(from.key)}`, size, { enabled: options.progress });
            return counted(body, progress);
          });
        } finally {
          progress?.finish();
        }
        if (options.json) {
          printJson({ source: from, destination: to, size: copied.size, chunks: copied.chunks });
        } else {
          console.error(
            `copied ${from.bucket}/${escapeName(from.key)} to ${to.bucket}/${escapeName(to.key)}: ` +
              `${formatSize(copied.size)} in ${copied.chunks} chunk(s)`,
          );
        }
      });
    });
}
