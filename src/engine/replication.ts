import {
  describeError,
  hasCode,
  IntegrityError,
  LilioError,
  QuorumError,
  type ReplicaFailure,
} from '../core/errors.js';
import type { ChunkRef } from '../core/types.js';
import type { Collector } from '../metrics/collector.js';
import type { BackendSet } from './backend-set.js';

export interface ReplicatedWrite {
  /** Resolves as soon as W replicas acknowledged; rejects with QuorumError when W cannot be reached. */
  quorum: Promise<void>;
  /** Resolves when every replica call has finished (the stored buffer may be reused after this). */
  settled: Promise<void>;
}

/** Hands the engine a replica that should exist but does not (missing, corrupt, or missed the write). */
export type RepairSink = (chunk: ChunkRef, backend: string, reason: string) => void;

/**
 * Writes one chunk to every backend of its replica set in parallel.
 * Early exit: `quorum` resolves at the W-th acknowledgement and the stragglers
 * finish in the background. If W can no longer be reached, every replica that
 * was written is deleted before `quorum` rejects, so a failed write leaves
 * nothing behind (the original design's "no rollback on partial writes", fixed).
 * A straggler that fails after quorum leaves the chunk under-replicated: it is
 * reported to `repair` so the missing replica gets written later.
 */
export function writeReplicas(
  backends: BackendSet,
  collector: Collector,
  chunk: ChunkRef,
  stored: Uint8Array,
  w: number,
  repair: RepairSink,
): ReplicatedWrite {
  const n = chunk.replicas.length;
  const written: string[] = [];
  const failures: ReplicaFailure[] = [];
  let decided = false;
  let quorumError: QuorumError | undefined;
  let resolveQuorum!: () => void;
  let rejectQuorum!: (err: Error) => void;
  const quorum = new Promise<void>((resolve, reject) => {
    resolveQuorum = resolve;
    rejectQuorum = reject;
  });

  const attempts = chunk.replicas.map(async (name) => {
    if (!backends.isHealthy(name)) {
      const why = backends.downCode(name);
      failures.push({
        backend: name,
        error: why === 'NO_SPACE' ? 'backend is down (out of space)' : 'backend is down',
        code: why,
      });
    } else {
      try {
        await backends.put(name, chunk.id, stored);
        written.push(name);
      } catch (err) {
        failures.push({
          backend: name,
          error: describeError(err),
          code: err instanceof LilioError ? err.code : undefined,
        });
      }
    }
    if (decided) return;
    if (written.length >= w) {
      decided = true;
      collector.recordQuorumWrite(true, n, written.length);
      resolveQuorum();
    } else if (failures.length > n - w) {
      decided = true;
      collector.recordQuorumWrite(false, n, written.length);
      quorumError = new QuorumError(`chunk ${chunk.id}`, w, written.length, [...failures]);
    }
  });
  const settled = Promise.all(attempts).then(async () => {
    if (quorumError) {
      // Roll back only once every attempt has finished, so no straggler lands after the delete.
      await rollback(backends, chunk, written);
      rejectQuorum(quorumError);
      return;
    }
    // Quorum reached: a replica that failed or was skipped leaves the chunk under-replicated.
    for (const failure of failures) repair(chunk, failure.backend, `write failed: ${failure.error}`);
  });
  return { quorum, settled };
}

async function rollback(backends: BackendSet, chunk: ChunkRef, written: readonly string[]): Promise<void> {
  await Promise.all(written.map((name) => backends.delete(name, chunk.id).catch(() => undefined)));
}

export interface ReadOptions {
  /** 'first': first verified replica; 'strict': R verified replicas. */
  mode: 'first' | 'strict';
  r: number;
  /** After this long without an answer, the next replica is asked too (hedged read). */
  hedgeMs: number;
}

/**
 * Returns a chunk from a replica whose SHA-256 matches the recorded checksum:
 * `verify` checks the stored bytes (and may decode them; undefined means they
 * do not match). Replicas found missing or corrupt on the way are handed to
 * `repair` (read repair); they are never returned.
 */
export async function readVerified<V>(
  backends: BackendSet,
  collector: Collector,
  chunk: ChunkRef,
  options: ReadOptions,
  repair: RepairSink,
  verify: (stored: Buffer) => Promise<V | undefined>,
): Promise<V> {
  // Healthy replicas first, in ring order; known-down ones only as a last resort.
  const order = [...chunk.replicas].sort((a, b) => Number(backends.isHealthy(b)) - Number(backends.isHealthy(a)));
  const failures: ReplicaFailure[] = [];

  const attempt = async (name: string): Promise<V> => {
    let data: Buffer;
    try {
      data = await backends.get(name, chunk.id);
    } catch (err) {
      failures.push({ backend: name, error: describeError(err) });
      if (hasCode(err, 'NOT_FOUND')) repair(chunk, name, 'missing');
      throw err;
    }
    const verified = data.byteLength === chunk.storedSize ? await verify(data) : undefined;
    if (verified === undefined) {
      collector.recordCorruptReplica(name);
      failures.push({ backend: name, error: 'checksum mismatch' });
      repair(chunk, name, 'corrupt');
      throw new IntegrityError(`replica of chunk ${chunk.id} on "${name}" is corrupt`);
    }
    return verified;
  };

  if (options.mode === 'strict') {
    const results = await Promise.allSettled(order.map(attempt));
    const good = results.filter((r): r is PromiseFulfilledResult<Awaited<V>> => r.status === 'fulfilled');
    if (good.length < options.r) {
      throw new QuorumError(`read of chunk ${chunk.id}`, options.r, good.length, failures);
    }
    return good[0]!.value;
  }
  return firstVerified(order, attempt, options.hedgeMs, () => {
    throw new QuorumError(`read of chunk ${chunk.id}`, 1, 0, failures);
  });
}

/**
 * Asks replicas one after another; when one is slower than hedgeMs the next
 * is asked as well, and the first verified answer wins. Only when every
 * replica has failed does it give up.
 */
function firstVerified<V>(
  order: readonly string[],
  attempt: (name: string) => Promise<V>,
  hedgeMs: number,
  allFailed: () => never,
): Promise<V> {
  return new Promise<V>((resolve, reject) => {
    let next = 0;
    let pending = 0;
    let done = false;
    let hedge: NodeJS.Timeout | undefined;

    const launch = (): void => {
      if (done || next >= order.length) return;
      const name = order[next++]!;
      pending++;
      clearTimeout(hedge);
      if (next < order.length) hedge = setTimeout(launch, hedgeMs);
      attempt(name).then(
        (data) => {
          pending--;
          if (done) return;
          done = true;
          clearTimeout(hedge);
          resolve(data);
        },
        () => {
          pending--;
          if (done) return;
          if (next < order.length) launch();
          else if (pending === 0) {
            done = true;
            clearTimeout(hedge);
            try {
              allFailed();
            } catch (err) {
              reject(err);
            }
          }
        },
      );
    };
    launch();
  });
}
