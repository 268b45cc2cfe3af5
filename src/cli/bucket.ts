import type { Command } from 'commander';
import { formatSize, parseSize } from '../config/size.js';
import { InvalidError } from '../core/errors.js';
import { withEngine } from './context.js';
import { formatTime, table } from './output.js';

export function registerBucketCommands(program: Command): void {
  const bucket = program.command('bucket').description('create, list, inspect and remove buckets');

  bucket
    .command('create <name>')
    .description('create a bucket')
    .option('--encrypt', 'encrypt every chunk with AES-256-GCM under a per-bucket key')
    .option('--chunk-size <size>', 'chunk size for new objects, 64KiB to 64MiB (default from config, 1MiB)')
    .action(async (name: string, options: { encrypt?: boolean; chunkSize?: string }, command: Command) => {
      let chunkSize: number | undefined;
      if (options.chunkSize !== undefined) {
        chunkSize = parseSize(options.chunkSize);
        if (chunkSize === undefined) throw new InvalidError(`--chunk-size: "${options.chunkSize}" is not a size`);
      }
      await withEngine(command, async (lilio) => {
        const record = await lilio.createBucket(name, { encrypt: options.encrypt ?? false, chunkSize });
        console.log(
          `created bucket ${record.name}${record.encrypted ? ' (encrypted)' : ''}, chunk size ${formatSize(record.chunkSize)}`,
        );
      });
    });

  bucket
    .command('ls')
    .description('list buckets')
    .action(async (_options: unknown, command: Command) => {
      await withEngine(command, async (lilio) => {
        const buckets = await lilio.listBuckets();
        const rows = [['NAME', 'ENCRYPTED', 'CHUNK SIZE', 'CREATED']];
        for (const b of buckets) {
          rows.push([b.name, b.encrypted ? 'yes' : 'no', formatSize(b.chunkSize), formatTime(b.createdAt)]);
        }
        console.log(table(rows));
      });
    });

  bucket
    .command('rm <name>')
    .description('remove an empty bucket')
    .action(async (name: string, _options: unknown, command: Command) => {
      await withEngine(command, async (lilio) => {
        await lilio.deleteBucket(name);
        console.log(`removed bucket ${name}`);
      });
    });

  bucket
    .command('info <name>')
    .description('show a bucket: settings, object count and bytes')
    .option('--json', 'print JSON')
    .action(async (name: string, options: { json?: boolean }, command: Command) => {
      await withEngine(command, async (lilio) => {
        const record = await lilio.getBucket(name);
        let objects = 0;
        let bytes = 0;
        let chunks = 0;
        let inline = 0;
        for await (const object of lilio.meta.iterateObjects(name)) {
          if (object.kind !== 'file') continue;
          objects++;
          bytes += object.size;
          chunks += object.chunks.length;
          if (object.inline !== undefined) inline++;
        }
        const info = {
          name: record.name,
          encrypted: record.encrypted,
          chunkSize: record.chunkSize,
          created: new Date(record.createdAt).toISOString(),
          objects,
          bytes,
          chunks,
          inlineObjects: inline,
        };
        if (options.json) {
          console.log(JSON.stringify(info, null, 2));
          return;
        }
        console.log(
          table([
            ['name', info.name],
            ['encrypted', info.encrypted ? 'yes (AES-256-GCM)' : 'no'],
            ['chunk size', formatSize(info.chunkSize)],
            ['created', formatTime(record.createdAt)],
            ['objects', String(objects)],
            ['bytes', `${formatSize(bytes)} (${bytes})`],
            ['chunks', String(chunks)],
            ['inline objects', String(inline)],
          ]),
        );
      });
    });
}
