import type { Command } from 'commander';
import { InvalidError } from '../core/errors.js';
import { withEngine } from './context.js';

export function registerGcCommand(program: Command): void {
  program
    .command('gc')
    .description('delete chunks that no object version references any more, once their grace period has passed')
    .option('--grace <seconds>', 'override the grace period from config (gc.graceSeconds)')
    .action(async (options: { grace?: string }, command: Command) => {
      let graceMs: number | undefined;
      if (options.grace !== undefined) {
        const seconds = Number(options.grace);
        if (!Number.isFinite(seconds) || seconds < 0)
          throw new InvalidError(`--grace: "${options.grace}" is not a number of seconds`);
        graceMs = seconds * 1000;
      }
      await withEngine(command, async (lilio) => {
        const result = await lilio.collectGarbage({ graceMs });
        const waiting = await lilio.meta.garbageCount();
        console.log(
          `deleted ${result.deleted} chunk(s); ${result.retried} to retry; ${waiting} still in their grace period`,
        );
      });
    });
}
