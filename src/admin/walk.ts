import { Semaphore } from '../core/semaphore.js';
import type { ObjectRecord } from '../core/types.js';
import type { Lilio } from '../engine/lilio.js';

/** Every object version of one bucket, or of all of them, with its chunk list. */
export async function* everyObject(lilio: Lilio, bucket?: string): AsyncGenerator<ObjectRecord> {
  const buckets = bucket === undefined ? (await lilio.listBuckets()).map((b) => b.name) : [bucket];
  if (bucket !== undefined) await lilio.getBucket(bucket);
  for (const name of buckets) yield* lilio.meta.iterateObjects(name);
}

/**
 * Runs `work` over `items` with at most `limit` at once, in order of
 * arrival, pulling the next item only when a slot is free (so a huge listing
 * is never held in memory). Rejects with the first failure, after the work in
 * progress has finished.
 */
export async function forEachLimited<T>(
  items: AsyncIterable<T> | Iterable<T>,
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  const slots = new Semaphore(limit);
  const running = new Set<Promise<void>>();
  let failure: { err: unknown } | undefined;
  for await (const item of items) {
    await slots.acquire();
    if (failure) {
      slots.release();
      break;
    }
    const task = work(item)
      .catch((err: unknown) => {
        failure ??= { err };
      })
      .finally(() => {
        slots.release();
        running.delete(task);
      });
    running.add(task);
  }
  await Promise.all(running);
  if (failure) throw failure.err;
}
