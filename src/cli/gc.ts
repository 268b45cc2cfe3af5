import type { Command } from 'commander';
import { collectOrphans, type OrphanReport } from '../admin/orphans.js';
import { UsageError } from '../core/errors.js';
import { withEngine } from './context.js';

export function renderOrphans(report: OrphanReport, dryRun: boolean): string {
  const lines = [
    `orphans: ${dryRun ? 'would delete' : 'deleted'} ${report.orphans} unreferenced chunk(s) and ${report.strays} stray ` +
      `replica(s) older than the grace period; ${report.young} younger chunk(s) left alone; ${report.failed} failed ` +
      `(of ${report.listed} listed)`,
  ];
  for (const s of report.skipped) lines.push(`  not scanned: ${s.backend}: ${s.reason}`);
  return lines.join('\n');
}

export function registerGcCommand(program: Command): void {
  program
    .command('gc')
    .description('delete chunks that no object version references any more, once their grace period has passed')
    .option('--grace <seconds>', 'override the grace period from config (gc.graceSeconds)')
    .option('--queue-only', 'only the garbage queue: skip listing the backends for orphans')
    .option('--dry-run', 'orphans: report what would be deleted (the queue is not touched)')
    .option('--json', 'print JSON')
    .action(
      async (options: { grace?: string; queueOnly?: boolean; dryRun?: boolean; json?: boolean }, command: Command) => {
        let graceMs: number | undefined;
        if (options.grace !== undefined) {
          const seconds = Number(options.grace);
          if (!Number.isFinite(seconds) || seconds < 0)
            throw new UsageError(`--grace: "${options.grace}" is not a number of seconds`);
          graceMs = seconds * 1000;
        }
        await withEngine(command, async (lilio) => {
          const queue = options.dryRun ? { deleted: 0, retried: 0 } : await lilio.collectGarbage({ graceMs });
          const waiting = await lilio.meta.garbageCount();
          // The queue first: what it deletes need not be listed again as orphans.
          const orphans = options.queueOnly
            ? undefined
            : await collectOrphans(lilio, {
                graceMs: graceMs ?? lilio.config.gc.graceSeconds * 1000,
                dryRun: options.dryRun,
              });
          if (options.json) {
            console.log(JSON.stringify({ queue: { ...queue, waiting }, orphans }, null, 2));
            return;
          }
          console.log(
            `deleted ${queue.deleted} chunk(s); ${queue.retried} to retry; ${waiting} still in their grace period`,
          );
          if (orphans) console.log(renderOrphans(orphans, options.dryRun ?? false));
        });
      },
    );
}
