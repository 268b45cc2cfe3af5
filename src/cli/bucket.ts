import type { Command } from 'commander';
import { formatSize, parseSize } from '../config/size.js';
import { InvalidError } from '../core/errors.js';
import { formatTime, printJson, table } from './output.js';
import { withTarget } from './target.js';

export function registerBucketCommands(program: Command): void {
  const bucket = program.command('bucket').description('create, list, inspect and remove buckets');

  bucket
    .command('create <name>')
    .description('create a bucket')
    .option('--encrypt', 'encrypt every chunk with AES-256-GCM under a per-bucket key')
    .option('--chunk-size <size>', 'chunk size for new objects, 64KiB to 64MiB (default from config, 1MiB)')
    .option('--json', 'print {name, encrypted, chunkSize, created} as JSON')
    .action(
      async (name: string, options: { encrypt?: boolean; chunkSize?: string; json?: boolean }, command: Command) => {
        let chunkSize: number | undefined;
        if (options.chunkSize !== undefined) {
          chunkSize = parseSize(options.chunkSize);
          if (chunkSize === undefined) throw new InvalidError(`--chunk-size: "${options.chunkSize}" is not a size`);
        }
        await withTarget(command, async (target) => {
          const record = await target.createBucket(name, { encrypt: options.encrypt ?? false, chunkSize });
          if (options.json) {
            printJson(record);
            return;
          }
          console.log(
            `created bucket ${record.name}${record.encrypted ? ' (encrypted)' : ''}, chunk size ${formatSize(record.chunkSize)}`,
          );
        });
      },
    );

  bucket
    .command('ls')
    .description('list buckets')
    .option('--json', 'print [{name, encrypted, chunkSize, created}] as JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      await withTarget(command, async (target) => {
        const buckets = await target.listBuckets();
        if (options.json) {
          printJson(buckets);
          return;
        }
        const rows = [['NAME', 'ENCRYPTED', 'CHUNK SIZE', 'CREATED']];
        for (const b of buckets) {
          rows.push([b.name, b.encrypted ? 'yes' : 'no', formatSize(b.chunkSize), formatTime(Date.parse(b.created))]);
        }
        console.log(table(rows));
      });
    });

  bucket
    .command('rm <name>')
    .description('remove an empty bucket')
    .action(async (name: string, _options: unknown, command: Command) => {
      await withTarget(command, async (target) => {
        await target.deleteBucket(name);
        console.log(`removed bucket ${name}`);
      });
    });

  bucket
    .command('info <name>')
    .description('show a bucket: settings, object count and bytes')
    .option('--json', 'print JSON')
    .action(async (name: string, options: { json?: boolean }, command: Command) => {
      await withTarget(command, async (target) => {
        const info = await target.bucketInfo(name);
        if (options.json) {
          printJson(info);
          return;
        }
        console.log(
          table([
            ['name', info.name],
            ['encrypted', info.encrypted ? 'yes (AES-256-GCM)' : 'no'],
            ['chunk size', formatSize(info.chunkSize)],
            ['created', formatTime(Date.parse(info.created))],
            ['objects', String(info.objects)],
            ['bytes', `${formatSize(info.bytes)} (${info.bytes})`],
            ['chunks', String(info.chunks)],
            ['inline objects', String(info.inlineObjects)],
          ]),
        );
      });
    });
}
