import type { Command } from 'commander';
import { formatSize } from '../config/size.js';
import { splitObjectPath, validateBucketName } from '../core/names.js';
import type { ListedObject } from '../server/api-types.js';
import { parseObjectPath } from './object.js';
import { escapeName, formatMode, formatTime, formatXattrValue, humanSize, printJson, table } from './output.js';
import { withTarget } from './target.js';

/** What `lilio ls --json` prints: one document, the whole listing (every page). */
export interface LsJson {
  bucket: string;
  prefix: string;
  /** "Folders" one level down (without -r), each ending with '/'. */
  prefixes: string[];
  objects: ListedObject[];
}

export function registerListingCommands(program: Command): void {
  program
    .command('ls <path>')
    .description(
      'list objects under BUCKET[/PREFIX], one level (or all with -r); control characters in keys are escaped',
    )
    .option('-r, --recursive', 'list every key below the prefix')
    .option('-l, --long', 'show size, mode and modification time')
    .option('-H, --human', 'with -l: sizes as 4.0K, 1.5M, 2G (-h is help)')
    .option('--json', 'print {bucket, prefix, prefixes, objects} as JSON, keys unescaped')
    .action(
      async (
        path: string,
        options: { recursive?: boolean; long?: boolean; human?: boolean; json?: boolean },
        command: Command,
      ) => {
        const { bucket, key: prefix } = splitObjectPath(path);
        validateBucketName(bucket);
        const size = options.human ? humanSize : String;
        await withTarget(command, async (target) => {
          let continuation: string | undefined;
          const listing: LsJson = { bucket, prefix, prefixes: [], objects: [] };
          do {
            const page = await target.list(bucket, { prefix, recursive: options.recursive ?? false, continuation });
            listing.prefixes.push(...page.prefixes);
            listing.objects.push(...page.objects);
            continuation = page.continuation;
          } while (continuation);
          if (options.json) {
            printJson(listing);
            return;
          }
          const rows: string[][] = [];
          for (const p of listing.prefixes)
            rows.push(options.long ? ['drwxr-xr-x', '-', '', escapeName(p)] : [escapeName(p)]);
          for (const o of listing.objects) {
            const name = escapeName(o.key);
            rows.push(options.long ? [formatMode(o.mode, o.kind), size(o.size), formatTime(o.mtimeMs), name] : [name]);
          }
          if (!options.long) {
            if (rows.length > 0) console.log(table(rows));
            return;
          }
          // Sizes right-aligned, as ls -l shows them.
          const width = Math.max(0, ...rows.map((row) => row[1]!.length));
          for (const row of rows) row[1] = row[1]!.padStart(width);
          if (rows.length > 0) console.log(table(rows));
        });
      },
    );

  program
    .command('stat <object>')
    .description('show an object version: size, chunks, replicas, attributes')
    .option('--json', 'print the whole metadata record as JSON')
    .action(async (target: string, options: { json?: boolean }, command: Command) => {
      const { bucket, key } = parseObjectPath(target);
      await withTarget(command, async (target) => {
        const record = await target.statObject(bucket, key);
        if (options.json) {
          printJson(record);
          return;
        }
        console.log(
          table([
            ['object', `${bucket}/${escapeName(key)}`],
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
}
