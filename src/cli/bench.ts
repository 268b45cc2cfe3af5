import { stat, statfs } from 'node:fs/promises';
import type { Command } from 'commander';
import { type BenchSettings, bucketDriver, directoryDriver, type PhaseResult, runBench } from '../admin/bench.js';
import { type Counters, countersOf, parseMetrics } from '../admin/bench-metrics.js';
import { formatSize, parseSize } from '../config/size.js';
import { NoSpaceError, UnavailableError, UsageError } from '../core/errors.js';
import { validateBucketName } from '../core/names.js';
import { PrometheusCollector } from '../metrics/prometheus.js';
import { refuseEndpoint, withEngine } from './context.js';
import { printJson, table } from './output.js';

interface BenchFlags {
  bigFileSize: string;
  smallFileSize: string;
  smallFiles: string;
  threads: string;
  blockSize: string;
  metricsUrl?: string;
  json?: boolean;
}

function size(text: string, option: string, min: number): number {
  const bytes = parseSize(text);
  if (bytes === undefined || bytes < min)
    throw new UsageError(`${option}: "${text}" is not a size${min ? ` of at least ${min}` : ''}`);
  return bytes;
}

function count(text: string, option: string, min: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min)
    throw new UsageError(`${option}: "${text}" is not a whole number >= ${min}`);
  return Number(text);
}

export function settingsFrom(flags: BenchFlags): BenchSettings {
  return {
    bigFileSize: size(flags.bigFileSize, '--big-file-size', 0),
    smallFileSize: size(flags.smallFileSize, '--small-file-size', 0),
    smallFiles: count(flags.smallFiles, '--small-files', 0),
    threads: count(flags.threads, '--threads', 1),
    blockSize: size(flags.blockSize, '--block-size', 4096),
  };
}

/** The most the bench has on the target at once: the big files, or later the small ones. */
export function bytesNeeded(s: BenchSettings): number {
  return Math.max(s.bigFileSize, s.smallFiles * s.smallFileSize) * s.threads;
}

/** Refuses a run that would fill the target: 10 % of the free space stays free. */
function guardSpace(needed: number, free: number | undefined, where: string): void {
  if (free === undefined || needed <= free * 0.9) return;
  throw new NoSpaceError(
    `bench would write ${formatSize(needed)} at once and ${where} has ${formatSize(free)} free: ` +
      'choose a smaller --big-file-size, --small-files or --threads',
  );
}

async function scrape(url: string): Promise<Counters> {
  let text: string;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    text = await res.text();
  } catch (err) {
    throw new UnavailableError(`cannot read the mount's metrics at ${url}: ${(err as Error).message}`);
  }
  return countersOf(parseMetrics(text));
}

const num = (n: number, digits: number) => n.toFixed(digits);

export function renderBench(header: string, results: PhaseResult[]): string {
  const rows = [
    ['ITEM', 'VALUE', 'COST', 'CHUNKS WRITTEN', 'REPLICAS W/R', 'QUORUM FAILED', 'BACKEND W/R', 'REPLICA PUT'],
  ];
  for (const r of results) {
    const e = r.engine;
    rows.push([
      r.name,
      `${num(r.value, r.unit === 'MiB/s' ? 2 : 1)} ${r.unit}`,
      `${num(r.cost, 2)} ${r.costUnit}`,
      e ? String(e.chunksWritten) : '-',
      e ? `${e.replicasWritten}/${e.replicasRead}` : '-',
      e ? String(e.quorumFailures) : '-',
      e ? `${formatSize(e.backendBytesWritten)}/${formatSize(e.backendBytesRead)}` : '-',
      e && e.replicasWritten > 0 ? `${num(e.replicaPutSeconds * 1000, 2)} ms` : '-',
    ]);
  }
  const lines = [header, '', table(rows)];
  if (results.length > 0 && results.every((r) => !r.engine)) {
    lines.push('', "(the engine's columns need the mount's metrics: lilio mount --metrics-port P, then --metrics-url)");
  }
  return lines.join('\n');
}

export function registerBenchCommand(program: Command): void {
  program
    .command('bench <target>')
    .description(
      'benchmark a mounted directory or a bucket (through the engine): big-file write/read, small-file create/read/stat/delete',
    )
    .option('--big-file-size <size>', 'size of the big file each thread writes (0: skip)', '1GiB')
    .option('--small-file-size <size>', 'size of each small file', '128KiB')
    .option('--small-files <n>', 'small files per thread', '100')
    .option('--threads <n>', 'parallel workers', '1')
    .option('--block-size <size>', 'bytes per write and read call', '1MiB')
    .option('--metrics-url <url>', "a mount's metrics (http://127.0.0.1:PORT/metrics) for the engine's columns")
    .option('--json', 'print {target, settings, results} as JSON')
    .action(async (target: string, flags: BenchFlags, command: Command) => {
      refuseEndpoint(command);
      const settings = settingsFrom(flags);
      const needed = bytesNeeded(settings);
      const info = await stat(target).catch(() => undefined);
      const print = (kind: string, where: string, results: PhaseResult[]) => {
        if (flags.json) {
          printJson({ target, kind, settings, results });
          return;
        }
        const header =
          `bench on ${where} (${kind}): ${settings.threads} thread(s); big file ${formatSize(settings.bigFileSize)} per thread; ` +
          `${settings.smallFiles} small file(s) of ${formatSize(settings.smallFileSize)} per thread`;
        console.log(renderBench(header, results));
      };

      if (info?.isDirectory()) {
        const fs = await statfs(target);
        guardSpace(needed, fs.blocks > 0 ? fs.bavail * fs.bsize : undefined, target);
        const url = flags.metricsUrl;
        const driver = directoryDriver(target);
        const results = await runBench(driver, settings, url ? () => scrape(url) : undefined);
        print('directory', target, results);
        return;
      }
      if (flags.metricsUrl)
        throw new UsageError('--metrics-url goes with a mounted directory; a bucket bench reads its own');
      if (target.includes('/')) throw new UsageError(`${target}: no such directory (a bucket is named without /)`);
      validateBucketName(target);
      const collector = new PrometheusCollector({ defaultMetrics: false });
      await withEngine(
        command,
        async (lilio) => {
          const capacity = await lilio.capacity();
          guardSpace(needed, capacity.totalBytes > 0 ? capacity.freeBytes : undefined, `bucket ${target}'s backends`);
          const counters = async () => countersOf(parseMetrics(await collector.registry.metrics()));
          const results = await runBench(bucketDriver(lilio, target), settings, counters);
          print('bucket, through the engine', target, results);
        },
        collector,
      );
    });
}
