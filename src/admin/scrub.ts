import { describeError, hasCode } from '../core/errors.js';
import type { ChunkRef } from '../core/types.js';
import type { Lilio } from '../engine/lilio.js';
import { type AdminMetrics, NoopAdminMetrics, type ReplicaProblemKind } from '../metrics/admin.js';
import { everyObject, forEachLimited } from './walk.js';

export interface ScrubOptions {
  /** Only this bucket; default every bucket. */
  bucket?: string;
  /** Rewrite missing and corrupt replicas from a verified one. */
  repair?: boolean;
  /** Chunks checked at once (each holds at most two replicas' bytes). */
  concurrency?: number;
  metrics?: AdminMetrics;
}

export interface ReplicaProblem {
  backend: string;
  kind: ReplicaProblemKind;
  error?: string;
  /** With --repair: whether the replica was rewritten. */
  repaired?: boolean;
}

export interface ChunkFinding {
  bucket: string;
  key: string;
  chunk: string;
  /** The replica set the chunk was written for. */
  replicas: string[];
  /** Replicas that verify, after any repair. */
  good: number;
  problems: ReplicaProblem[];
}

export interface ScrubReport {
  buckets: number;
  objects: number;
  /** Objects kept inside their metadata record: no chunk, nothing to check. */
  inlineObjects: number;
  chunks: number;
  replicasChecked: number;
  problems: Record<ReplicaProblemKind, number>;
  /** Chunks with fewer verified replicas than their replica set names, after any repair. */
  underReplicated: number;
  /** Chunks with no verified replica left and none that could not be asked: their data is gone. */
  lost: number;
  repaired: number;
  repairFailed: number;
  /** The chunks with a problem (the first MAX_FINDINGS of them). */
  findings: ChunkFinding[];
  /** True when findings were cut at MAX_FINDINGS. */
  findingsTruncated: boolean;
  /**
   * With repair: the repairs recorded in the metadata store (by any process's
   * reads and writes), done before the scan; `waiting` are those left (their
   * backend is down).
   */
  recordedRepairs?: { repaired: number; waiting: number };
}

const MAX_FINDINGS = 1_000;

/**
 * Reads every replica of every chunk and checks it against the recorded
 * SHA-256 of the stored bytes, without decrypting (scrub needs no key). This
 * finds what reads never visit: replicas a write missed, bits rotted on a disk
 * nobody reads, chunks left on a backend that has since been removed. With
 * `repair`, each missing or corrupt replica is rewritten from a verified one,
 * so a chunk ends with a good replica on every backend of its replica set.
 */
export async function scrub(lilio: Lilio, options: ScrubOptions = {}): Promise<ScrubReport> {
  const metrics = options.metrics ?? new NoopAdminMetrics();
  const report: ScrubReport = {
    buckets: options.bucket === undefined ? (await lilio.listBuckets()).length : 1,
    objects: 0,
    inlineObjects: 0,
    chunks: 0,
    replicasChecked: 0,
    problems: { missing: 0, corrupt: 0, unreachable: 0, unknown_backend: 0 },
    underReplicated: 0,
    lost: 0,
    repaired: 0,
    repairFailed: 0,
    findings: [],
    findingsTruncated: false,
  };

  // The recorded backlog first: the scan then finds only what nobody had noticed.
  if (options.repair) report.recordedRepairs = await lilio.finishRepairs();

  async function* chunks(): AsyncGenerator<{ bucket: string; key: string; chunk: ChunkRef }> {
    for await (const record of everyObject(lilio, options.bucket)) {
      report.objects++;
      if (record.chunks.length === 0) {
        if (record.inline !== undefined) report.inlineObjects++;
        continue;
      }
      for (const chunk of record.chunks) yield { bucket: record.bucket, key: record.key, chunk };
    }
  }

  await forEachLimited(chunks(), options.concurrency ?? 4, async ({ bucket, key, chunk }) => {
    const finding = await checkChunk(lilio, chunk, options.repair ?? false, metrics, report);
    report.chunks++;
    lilio.collector.recordScrubbed(
      1,
      finding.problems.filter((p) => p.kind === 'missing' || p.kind === 'corrupt').length,
    );
    if (finding.problems.length === 0) return;
    finding.bucket = bucket;
    finding.key = key;
    if (finding.good < chunk.replicas.length) {
      report.underReplicated++;
      lilio.collector.recordUnderReplicated(1);
    }
    if (finding.good === 0 && !finding.problems.some((p) => p.kind === 'unreachable')) report.lost++;
    if (report.findings.length < MAX_FINDINGS) report.findings.push(finding);
    else report.findingsTruncated = true;
  });
  lilio.collector.recordScrubFinished();
  return report;
}

async function checkChunk(
  lilio: Lilio,
  chunk: ChunkRef,
  repair: boolean,
  metrics: AdminMetrics,
  report: ScrubReport,
): Promise<ChunkFinding> {
  const finding: ChunkFinding = {
    bucket: '',
    key: '',
    chunk: chunk.id,
    replicas: chunk.replicas,
    good: 0,
    problems: [],
  };
  const configured = new Set(lilio.backends.names);
  // One replica at a time, keeping only the first verified copy: memory stays at two replicas per chunk.
  let verified: Buffer | undefined;
  for (const backend of chunk.replicas) {
    const problem = await checkReplica(lilio, chunk, backend, configured);
    report.replicasChecked++;
    if (Buffer.isBuffer(problem)) {
      finding.good++;
      verified ??= problem;
      continue;
    }
    finding.problems.push(problem);
    report.problems[problem.kind]++;
    metrics.recordReplicaProblem(problem.kind);
  }
  if (!repair || !verified) return finding;
  for (const problem of finding.problems) {
    // A replica that could not be asked may be fine; one on a backend no longer configured is rebalance's.
    if (problem.kind !== 'missing' && problem.kind !== 'corrupt') continue;
    try {
      await lilio.backends.put(problem.backend, chunk.id, verified);
      problem.repaired = true;
      finding.good++;
      report.repaired++;
      metrics.recordScrubRepair(true);
    } catch (err) {
      problem.repaired = false;
      problem.error = describeError(err);
      report.repairFailed++;
      metrics.recordScrubRepair(false);
    }
  }
  return finding;
}

/** The replica's verified bytes, or what is wrong with it. */
async function checkReplica(
  lilio: Lilio,
  chunk: ChunkRef,
  backend: string,
  configured: ReadonlySet<string>,
): Promise<Buffer | ReplicaProblem> {
  if (!configured.has(backend)) return { backend, kind: 'unknown_backend', error: 'not in the config any more' };
  // Asking a backend already marked down would cost a timeout per chunk; its replicas wait for the next scrub.
  if (!lilio.backends.isHealthy(backend)) return { backend, kind: 'unreachable', error: 'backend is down' };
  let stored: Buffer;
  try {
    stored = await lilio.backends.get(backend, chunk.id);
  } catch (err) {
    if (hasCode(err, 'NOT_FOUND')) return { backend, kind: 'missing' };
    return { backend, kind: 'unreachable', error: describeError(err) };
  }
  if (stored.byteLength !== chunk.storedSize) {
    return { backend, kind: 'corrupt', error: `${stored.byteLength} bytes, expected ${chunk.storedSize}` };
  }
  return (await lilio.chunks.verify(chunk, stored)) ?? { backend, kind: 'corrupt', error: 'checksum mismatch' };
}
