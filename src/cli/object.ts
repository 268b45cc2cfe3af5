import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { formatSize } from '../config/size.js';
import { InvalidError, IsDirError } from '../core/errors.js';
import { splitObjectPath, validateBucketName, validateKey } from '../core/names.js';
import { openDownload } from './download.js';
import { localFileError } from './local-errors.js';
import { formatMode, formatTime, formatXattrValue, table } from './output.js';
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

export function registerObjectCommands(program: Command): void {
  program
    .command('put <local> <object>')
    .description('upload a local file (or - for stdin) to BUCKET/KEY')
    .action(async (local: string, target: string, _options: unknown, command: Command) => {
      const { bucket, key } = parseObjectPath(target);
      const info =
        local === '-'
          ? undefined
          : await stat(local).catch((err: unknown) => Promise.reject(localFileError(err, local)));
      if (info?.isDirectory()) throw new IsDirError(`${local} is a directory: put takes one file`);
      const size = info?.size;
      const source = local === '-' ? process.stdin : createReadStream(local, { highWaterMark: 1024 * 1024 });
      await withTarget(command, async (target) => {
        const progress = new Progress(`put ${bucket}/${key}`, size);
        const stored = await target.putObject(bucket, key, counted(source, progress), size);
        progress.finish();
        console.error(`stored ${bucket}/${key}: ${formatSize(stored.size)} in ${stored.chunks} chunk(s)`);
      });
    });

  program
    .command('get <object> <local>')
    .description('download BUCKET/KEY to a local file, into a directory as DIR/BASENAME, or to stdout (-)')
    .action(async (source: string, local: string, _options: unknown, command: Command) => {
      const { bucket, key } = parseObjectPath(source);
      // The target is opened first: one that cannot be written fails before anything is downloaded.
      const sink = local === '-' ? undefined : await openDownload(local, key);
      try {
        await withTarget(command, async (target) => {
          const object = await target.getObject(bucket, key);
          const progress = new Progress(`get ${bucket}/${key}`, object.size);
          const body = counted(object.body, progress);
          if (sink) {
            await pipeline(body, sink.stream).catch((err: unknown) => {
              // Only a failed write is about the local file; a failed read is the object's (or the server's).
              throw (err as NodeJS.ErrnoException).syscall === 'write' ? localFileError(err, sink.path) : err;
            });
            await sink.commit();
          } else {
            await pipeline(body, process.stdout);
          }
          progress.finish();
        });
      } catch (err) {
        await sink?.abort();
        throw err;
      }
    });

  program
    .command('ls <path>')
    .description('list objects under BUCKET[/PREFIX], one level (or all with -r)')
    .option('-r, --recursive', 'list every key below the prefix')
    .option('-l, --long', 'show size, mode and modification time')
    .action(async (path: string, options: { recursive?: boolean; long?: boolean }, command: Command) => {
      const { bucket, key: prefix } = splitObjectPath(path);
      validateBucketName(bucket);
      await withTarget(command, async (target) => {
        let continuation: string | undefined;
        const rows: string[][] = [];
        do {
          const page = await target.list(bucket, { prefix, recursive: options.recursive ?? false, continuation });
          for (const p of page.prefixes) rows.push(options.long ? ['drwxr-xr-x', '-', '', p] : [p]);
          for (const o of page.objects) {
            rows.push(
              options.long ? [formatMode(o.mode, o.kind), String(o.size), formatTime(o.mtimeMs), o.key] : [o.key],
            );
          }
          continuation = page.continuation;
        } while (continuation);
        if (rows.length > 0) console.log(table(rows));
      });
    });

  program
    .command('stat <object>')
    .description('show an object version: size, chunks, replicas, attributes')
    .option('--json', 'print the whole metadata record as JSON')
    .action(async (target: string, options: { json?: boolean }, command: Command) => {
      const { bucket, key } = parseObjectPath(target);
      await withTarget(command, async (target) => {
        const record = await target.statObject(bucket, key);
        if (options.json) {
          console.log(JSON.stringify(record, null, 2));
          return;
        }
        console.log(
          table([
            ['object', `${bucket}/${key}`],
            ['kind', record.kind],
            ['size', `${formatSize(record.size)} (${record.size})`],
            ['version', String(record.version)],
            [
              'stored',
              record.inline !== undefined
                ? 'inline in metadata'
                : `${record.chunks.length} chunk(s) of ${formatSize(record.chunkSize)}`,
            ],
            ['mode', `${formatMode(record.attrs.mode, record.kind)} uid=${record.attrs.uid} gid=${record.attrs.gid}`],
            ['modified', formatTime(record.attrs.mtimeMs)],
            ['committed', formatTime(record.committedAt)],
            ...Object.entries(record.xattrs ?? {}).map(([name, value]) => [
              name,
              formatXattrValue(Buffer.from(value, 'base64')),
            ]),
          ]),
        );
        if (record.chunks.length > 0) {
          const rows = [['#', 'CHUNK', 'SIZE', 'REPLICAS']];
          for (const [i, c] of record.chunks.slice(0, 20).entries()) {
            rows.push([String(i), c.id, String(c.size), c.replicas.join(',')]);
          }
          if (record.chunks.length > 20) rows.push(['…', `${record.chunks.length - 20} more`, '', '']);
          console.log(`\n${table(rows)}`);
        }
      });
    });

  program
    .command('rm <object>')
    .description('remove BUCKET/KEY (its chunks are deleted after the garbage grace period)')
    .action(async (target: string, _options: unknown, command: Command) => {
      const { bucket, key } = parseObjectPath(target);
      await withTarget(command, async (target) => {
        await target.deleteObject(bucket, key);
        console.error(`removed ${bucket}/${key}`);
      });
    });
}
