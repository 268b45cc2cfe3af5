import { describeError } from '../core/errors.js';
import type { ChunkRef } from '../core/types.js';
import type { Lilio } from '../engine/lilio.js';
import { type AdminMetrics, NoopAdminMetrics } from '../metrics/admin.js';
import { everyObject, forEachLimited } from './walk.js';

export interface OrphanOptions {
  /** Only chunks written longer ago than this are candidates (uploads in flight are younger). */
  graceMs: number;
  /** Report what would be deleted, delete nothing. */
  dryRun?: boolean;
  metrics?: AdminMetrics;
}

export interface OrphanReport {
  /** Chunks listed, over every backend that was scanned. */
  listed: number;
  /** Deleted (or, in a dry run, to delete): chunks no object version references at all. */
  orphans: number;
  /** Deleted: replicas of live chunks on a backend outside their replica set (left by an interrupted rebalance). */
  strays: number;
  /** Chunks younger than the grace period: not examined (an upload in flight may be writing them). */
  young: number;
  /** Old enough and unreferenced, but held by a live session (being written, or read by an open file): kept. */
  held: number;
  /** Deletes that failed (retried by the next run). */
  failed: number;
  /** Backends not scanned, and why (down, or unable to tell a chunk's age). */
  skipped: Array<{ backend: string; reason: string }>;
}

const GARBAGE_PAGE = 1_000;

/**
 * Finds chunks that the garbage queue cannot know about — left by a writer
 * that crashed before its commit, or by a rebalance interrupted between its
 * copy and its commit — and deletes those older than the grace period.
 *
 * Order matters: the backends are listed first and the metadata read after,
 * so every chunk a commit referenced before the listing is seen as live. A
 * chunk committed later was written by an upload still in flight at listing
 * time, which the grace period protects as long as uploads finish within it.
 * Chunks the garbage queue holds are left to the queue (readers of the
 * version they belonged to may still be reading them), and chunks a live
 * session holds are left alone: a file open for longer than the grace period
 * may have sealed them long ago and commit them only when it closes, or may
 * still read a version that was replaced or unlinked. The holds too are read
 * after the listings; the grace period covers a hold recorded after that.
 */
export async function collectOrphans(lilio: Lilio, options: OrphanOptions): Promise<OrphanReport> {
  const metrics = options.metrics ?? new NoopAdminMetrics();
  const report: OrphanReport = { listed: 0, orphans: 0, strays: 0, young: 0, held: 0, failed: 0, skipped: [] };
  if (!lilio.meta.peekGarbage) {
    for (const name of lilio.backends.names) {
      report.skipped.push({
        backend: name,
        reason: `the ${lilio.meta.type} metadata store cannot show its garbage queue`,
      });
    }
    return report;
  }

  // 1. Old enough candidates, per backend. Only the old ones are kept in memory.
  const now = Date.now();
  const candidates = new Map<string, string[]>();
  const candidateIds = new Set<string>();
  for (const name of lilio.backends.names) {
    const backend = lilio.backends.backend(name)!;
    if (!backend.listEntries) {
      report.skipped.push({ backend: name, reason: `a ${backend.type} backend cannot tell how old its chunks are` });
      continue;
    }
    if (!lilio.backends.isHealthy(name)) {
      report.skipped.push({ backend: name, reason: 'backend is down' });
      continue;
    }
    const old: string[] = [];
    try {
      for await (const entry of backend.listEntries()) {
        report.listed++;
        if (now - entry.modifiedMs >= options.graceMs) old.push(entry.id);
        else report.young++;
      }
    } catch (err) {
      report.skipped.push({ backend: name, reason: `listing failed: ${describeError(err)}` });
      continue;
    }
    candidates.set(name, old);
    for (const id of old) candidateIds.add(id);
  }

  // 2. Where the metadata says each candidate belongs, read after the listings.
  const placement = new Map<string, Set<string>>();
  const place = (chunks: readonly ChunkRef[]) => {
    for (const chunk of chunks) {
      if (!candidateIds.has(chunk.id)) continue;
      const where = placement.get(chunk.id) ?? new Set<string>();
      for (const name of chunk.replicas) where.add(name);
      placement.set(chunk.id, where);
    }
  };
  // Parts of uploads in progress own their chunks as versions do. Read before the objects: a
  // completion in between moves chunks from a part to an object, never the other way.
  const buckets = (await lilio.listBuckets()).map((b) => b.name);
  for await (const part of lilio.uploads.everyPart(buckets)) place(part.chunks);
  for await (const record of everyObject(lilio)) place(record.chunks);
  const queued = new Set<string>();
  for (let page = await lilio.meta.peekGarbage(undefined, GARBAGE_PAGE); page.length > 0; ) {
    for (const entry of page) if (candidateIds.has(entry.chunk.id)) queued.add(entry.chunk.id);
    page = await lilio.meta.peekGarbage(page[page.length - 1]!.chunk.id, GARBAGE_PAGE);
  }

  const held = await lilio.meta.heldChunkIds();

  // 3. Delete what no version places on that backend and no session holds.
  const heldSeen = new Set<string>();
  const deletions = [...candidates].flatMap(([name, ids]) =>
    ids.flatMap((id) => {
      if (queued.has(id)) return [];
      if (held.has(id) && !placement.has(id)) {
        heldSeen.add(id);
        return [];
      }
      const where = placement.get(id);
      if (where?.has(name)) return [];
      return [{ name, id, stray: where !== undefined }];
    }),
  );
  report.held = heldSeen.size;
  await forEachLimited(deletions, 8, async ({ name, id, stray }) => {
    if (!options.dryRun) {
      try {
        await lilio.backends.delete(name, id);
      } catch {
        report.failed++;
        return;
      }
    }
    if (stray) report.strays++;
    else report.orphans++;
  });
  const deleted = report.orphans + report.strays;
  if (!options.dryRun && deleted > 0) {
    metrics.recordOrphansDeleted(deleted);
    lilio.collector.recordGarbageCollected(deleted);
  }
  return report;
}
