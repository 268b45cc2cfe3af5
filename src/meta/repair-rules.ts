import { InvalidError } from '../core/errors.js';
import type { RepairDone, RepairEntry } from './store.js';

/**
 * The repair queue's rules, shared by every metadata store so they agree:
 * one entry per chunk, backends deduplicated and kept sorted, the first
 * queuing time kept.
 */

/** `entry` folded into what the store holds for its chunk (if anything). */
export function mergeRepair(held: RepairEntry | undefined, entry: RepairEntry): RepairEntry {
  if (entry.backends.length === 0) throw new InvalidError(`repair of chunk ${entry.chunk.id} names no backend`);
  const backends = [...new Set([...(held?.backends ?? []), ...entry.backends])].sort();
  return {
    chunk: entry.chunk,
    backends,
    queuedAt: held ? Math.min(held.queuedAt, entry.queuedAt) : entry.queuedAt,
  };
}

/** What is left of `held` once `done` is cleared: undefined when no backend remains. */
export function clearRepair(held: RepairEntry, done: readonly string[]): RepairEntry | undefined {
  const left = held.backends.filter((name) => !done.includes(name));
  return left.length > 0 ? { ...held, backends: left } : undefined;
}

/** Several entries (or clearings) of one chunk in one call become one. */
export function byChunk<T extends RepairEntry | RepairDone>(
  items: readonly T[],
  merge: (a: T, b: T) => T,
): Map<string, T> {
  const merged = new Map<string, T>();
  for (const item of items) {
    const id = 'chunk' in item ? item.chunk.id : item.chunkId;
    const seen = merged.get(id);
    merged.set(id, seen ? merge(seen, item) : item);
  }
  return merged;
}

export function mergeEntries(entries: readonly RepairEntry[]): RepairEntry[] {
  return [...byChunk(entries, (a, b) => mergeRepair(a, b)).values()];
}

export function mergeDone(done: readonly RepairDone[]): RepairDone[] {
  return [
    ...byChunk(done, (a, b) => ({
      chunkId: a.chunkId,
      backends: [...new Set([...a.backends, ...b.backends])],
    })).values(),
  ];
}
