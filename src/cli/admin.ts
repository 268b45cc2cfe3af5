import type { Server } from 'node:http';
import type { Command } from 'commander';
import { type RebalanceReport, rebalance } from '../admin/rebalance.js';
import { type ScrubReport, scrub } from '../admin/scrub.js';
import { LilioError } from '../core/errors.js';
import { type LastScrub, MAX_LISTED, saveLastScrub } from '../engine/last-scrub.js';
import { type AdminMetrics, NoopAdminMetrics, PrometheusAdminMetrics } from '../metrics/admin.js';
import type { Collector } from '../metrics/collector.js';
import { PrometheusCollector } from '../metrics/prometheus.js';
import { serveMetrics } from '../server/metrics-http.js';
import { refuseEndpoint, withEngine } from './context.js';
import { parsePort } from './options.js';

/** Metrics for a long admin run, served while it lasts when --metrics-port is given. */
export async function adminMetrics(
  port: string | undefined,
): Promise<{ collector?: Collector; metrics: AdminMetrics; server?: Server }> {
  if (port === undefined) return { metrics: new NoopAdminMetrics() };
  const collector = new PrometheusCollector();
  const server = await serveMetrics(collector.registry, parsePort(port, '--metrics-port'));
  return { collector, metrics: new PrometheusAdminMetrics(collector.registry), server };
}

/** The part of a scrub report that `lilio status` shows until the next scrub. */
export function lastScrubOf(report: ScrubReport, bucket: string | undefined, repair: boolean): LastScrub {
  const corrupt = report.findings.flatMap((f) =>
    f.problems
      .filter((q) => q.kind === 'corrupt')
      .map((q) => ({
        bucket: f.bucket,
        key: f.key,
        chunk: f.chunk,
        backend: q.backend,
        repaired: q.repaired ?? false,
      })),
  );
  return {
    finishedAt: new Date().toISOString(),
    bucket,
    repair,
    chunks: report.chunks,
    replicasChecked: report.replicasChecked,
    problems: { ...report.problems },
    underReplicated: report.underReplicated,
    lost: report.lost,
    corrupt: corrupt.slice(0, MAX_LISTED),
  };
}

export function renderScrub(report: ScrubReport, repair: boolean): string {
  const p = report.problems;
  const lines = [
    `scrubbed ${report.buckets} bucket(s), ${report.objects} object(s) (${report.inlineObjects} inline, nothing to check), ` +
      `${report.chunks} chunk(s), ${report.replicasChecked} replica(s)`,
    `problems: ${p.missing} missing, ${p.corrupt} corrupt, ${p.unreachable} unreachable, ${p.unknown_backend} on backends no longer configured`,
  ];
  if (report.recordedRepairs) {
    const r = report.recordedRepairs;
    lines.push(
      `recorded repairs: rewrote ${r.repaired} replica(s) found missing earlier; ${r.waiting} chunk(s) still wait`,
    );
  }
  if (repair) lines.push(`repaired ${report.repaired} replica(s); ${report.repairFailed} could not be repaired`);
  lines.push(`under-replicated: ${report.underReplicated} chunk(s); lost: ${report.lost} chunk(s)`);
  for (const f of report.findings) {
    const problems = f.problems
      .map((q) => `${q.backend} ${q.kind}${q.repaired ? ' (repaired)' : ''}${q.error ? `: ${q.error}` : ''}`)
      .join(', ');
    lines.push(`  ${f.bucket}/${f.key} chunk ${f.chunk}: ${f.good}/${f.replicas.length} good; ${problems}`);
  }
  if (report.findingsTruncated) lines.push('  ... (more; see --json)');
  if (report.underReplicated === 0 && report.lost === 0)
    lines.push('clean: every chunk has a verified replica on each backend of its replica set');
  return lines.join('\n');
}

export function renderRebalance(report: RebalanceReport): string {
  const verb = report.dryRun ? 'would move' : 'moved';
  const lines = [
    `${verb} ${report.moved} of ${report.chunks} chunk(s) in ${report.objects} object(s) to their ring placement ` +
      `(${report.replicasCopied} replica(s) ${report.dryRun ? 'to copy' : 'copied'})`,
  ];
  if (!report.dryRun) {
    lines.push(
      `${report.objectsUpdated} object(s) updated; ${report.replicasQueued} old replica(s) queued for deletion ` +
        `(lilio gc, after the grace period); ${report.replicasLeft} left on backends no longer configured`,
    );
  }
  for (const f of report.failures) lines.push(`  failed: ${f.bucket}/${f.key}: ${f.error}`);
  return lines.join('\n');
}

export function registerAdminCommands(program: Command): void {
  program
    .command('scrub [bucket]')
    .description("check every chunk's replicas against their checksums (no decryption); --repair rewrites bad ones")
    .option('--repair', 'rewrite missing and corrupt replicas from a verified one')
    .option('--json', 'print the report as JSON')
    .option('--metrics-port <port>', 'serve progress metrics on this port while scrubbing')
    .action(
      async (
        bucket: string | undefined,
        options: { repair?: boolean; json?: boolean; metricsPort?: string },
        command: Command,
      ) => {
        refuseEndpoint(command);
        const { collector, metrics, server } = await adminMetrics(options.metricsPort);
        try {
          const report = await withEngine(
            command,
            async (lilio) => {
              const report = await scrub(lilio, { bucket, repair: options.repair ?? false, metrics });
              // For `lilio status`: it lists backends but reads no replica, so corrupt ones are only known here.
              saveLastScrub(
                lilio.config.home,
                lilio.config.source,
                lastScrubOf(report, bucket, options.repair ?? false),
              );
              return report;
            },
            collector,
          );
          console.log(options.json ? JSON.stringify(report, null, 2) : renderScrub(report, options.repair ?? false));
          if (report.underReplicated + report.lost > 0) {
            const p = report.problems;
            const hints = [];
            if (!options.repair && p.missing + p.corrupt > 0)
              hints.push('lilio scrub --repair rewrites missing and corrupt replicas');
            if (p.unreachable > 0) hints.push(`${p.unreachable} replica(s) are on backends that did not answer`);
            if (p.unknown_backend > 0) hints.push('lilio rebalance places chunks of removed backends elsewhere');
            throw new LilioError(
              'INTEGRITY',
              `${report.underReplicated} chunk(s) under-replicated, ${report.lost} lost${hints.length ? ` (${hints.join('; ')})` : ''}`,
            );
          }
        } finally {
          server?.close();
        }
      },
    );

  program
    .command('rebalance [bucket]')
    .description('move chunks to their ring placement after backends were added or removed')
    .option('--dry-run', 'report what would move; move nothing')
    .option('--json', 'print the report as JSON')
    .action(async (bucket: string | undefined, options: { dryRun?: boolean; json?: boolean }, command: Command) => {
      const report = await withEngine(command, (lilio) => rebalance(lilio, { bucket, dryRun: options.dryRun }));
      console.log(options.json ? JSON.stringify(report, null, 2) : renderRebalance(report));
      if (report.failures.length > 0) {
        throw new LilioError(
          'UNAVAILABLE',
          `${report.failures.length} object(s) could not be rebalanced; run it again`,
        );
      }
    });
}
