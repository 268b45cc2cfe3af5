import type { Command } from 'commander';
import { collectOrphans, type OrphanReport } from '../admin/orphans.js';
import { UsageError } from '../core/errors.js';
import type { TemporaryFileSweep } from '../engine/temporary-files.js';
import { withEngine } from './context.js';

export function renderTemporaryFiles(sweep: TemporaryFileSweep): string {
  const lines = [`temporary files: removed ${sweep.removed} left by interrupted writes, older than the grace period`];
  for (const s of sweep.skipped) lines.push(`  not swept: ${s.backend}: ${s.reason}`);
  return lines.join('\n');
}

export function renderOrphans(report: OrphanReport, dryRun: boolean): string {
  const lines = [
    `orphans: ${dryRun ? 'would delete' : 'deleted'} ${report.orphans} unreferenced chunk(s) and ${report.strays} stray ` +
      `replica(s) older than the grace period; ${report.young} younger and ${report.held} held chunk(s) left alone; ` +
      `${report.failed} failed ` +
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
    .option('--queue-only', 'only the garbage queue: skip listing the backends for orphans and temporary files')
    .option('--dry-run', 'orphans: report what would be deleted (the queue and temporary files are not touched)')
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
          // Repairs recorded by any process, before deleting anything: they concern live data.
          const repairs = options.dryRun ? undefined : await lilio.finishRepairs();
          const queue = options.dryRun ? { deleted: 0, retried: 0 } : await lilio.collectGarbage({ graceMs });
          const waiting = await lilio.meta.garbageCount();
          const grace = graceMs ?? lilio.config.gc.graceSeconds * 1000;
          // The queue first: what it deletes need not be listed again as orphans.
          const orphans = options.queueOnly
            ? undefined
            : await collectOrphans(lilio, { graceMs: grace, dryRun: options.dryRun });
          const temporaryFiles =
            options.queueOnly || options.dryRun ? undefined : await lilio.sweepTemporaryFiles({ graceMs: grace });
          if (options.json) {
            console.log(JSON.stringify({ queue: { ...queue, waiting }, orphans, temporaryFiles, repairs }, null, 2));
            return;
          }
          console.log(
            `deleted ${queue.deleted} chunk(s); ${queue.retried} to retry; ${waiting} still in their grace period`,
          );
          if ('uploadsExpired' in queue && queue.uploadsExpired > 0) {
            console.log(
              `aborted ${queue.uploadsExpired} multipart upload(s) untouched for ${lilio.config.uploads.expireAfterSeconds} s`,
            );
          }
          if (orphans) console.log(renderOrphans(orphans, options.dryRun ?? false));
          if (temporaryFiles) console.log(renderTemporaryFiles(temporaryFiles));
          if (repairs) {
            console.log(
              `recorded repairs: rewrote ${repairs.repaired} replica(s); ${repairs.waiting} chunk(s) still wait (backend down?)`,
            );
          }
        });
      },
    );
}
