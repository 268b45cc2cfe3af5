import { createReadStream, createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { dumpMetadata, loadMetadata } from '../meta/dump.js';
import { withEngine } from './context.js';

export function registerMetaCommands(program: Command): void {
  const meta = program.command('meta').description('export and import metadata as JSON lines (any store type)');

  meta
    .command('dump [file]')
    .description('write every bucket, object and pending garbage entry as JSON lines (default stdout)')
    .action(async (file: string | undefined, _options: unknown, command: Command) => {
      await withEngine(command, async (lilio) => {
        const out = file ? createWriteStream(file) : process.stdout;
        const counts = await dumpMetadata(lilio.meta, (line) => {
          out.write(`${line}\n`);
        });
        if (file)
          await new Promise<void>((resolve, reject) =>
            out.end((err?: Error | null) => (err ? reject(err) : resolve())),
          );
        console.error(`dumped ${JSON.stringify(counts)}`);
      });
    });

  meta
    .command('load <file>')
    .description('load JSON lines written by `meta dump` into the configured store')
    .action(async (file: string, _options: unknown, command: Command) => {
      await withEngine(command, async (lilio) => {
        const lines = createInterface({
          input: file === '-' ? process.stdin : createReadStream(file),
          crlfDelay: Infinity,
        });
        const counts = await loadMetadata(lilio.meta, lines);
        console.error(`loaded ${JSON.stringify(counts)}`);
      });
    });
}
