import { randomBytes } from 'node:crypto';
import { mkdir, open, rm, rmdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lilio } from '../engine/lilio.js';
import { type Counters, type EngineView, viewBetween } from './bench-metrics.js';

/**
 * `lilio bench`, after `juicefs bench`: each thread writes and reads one big
 * file sequentially, then creates, reads, stats and deletes its share of small
 * files. The same workload runs on a mounted directory (through the kernel
 * and FUSE, as applications see it) or on a bucket (through the engine in
 * this process, without FUSE); comparing the two shows what the mount costs.
 */
export interface BenchSettings {
  bigFileSize: number;
  smallFileSize: number;
  /** Small files per thread, as juicefs counts them. */
  smallFiles: number;
  threads: number;
  /** Bytes per write and read call. */
  blockSize: number;
}

/** Where the files go: a directory (a mount) or a bucket (the engine). */
export interface BenchDriver {
  readonly description: string;
  setup(): Promise<void>;
  write(name: string, size: number, block: Buffer): Promise<void>;
  /** Reads the whole file; returns the bytes read. */
  read(name: string, blockSize: number): Promise<number>;
  stat(name: string): Promise<void>;
  remove(name: string): Promise<void>;
  /**
   * Waits for work a phase left running after its calls returned (replicas
   * written after the quorum answered), so the phase's engine view counts them
   * and the next phase does not pay for them. Not timed.
   */
  settle?(): Promise<void>;
  cleanup(): Promise<void>;
}

export interface PhaseResult {
  name: string;
  /** Throughput: MiB/s for big files, files/s for small ones. */
  value: number;
  unit: 'MiB/s' | 'files/s';
  /** Time per operation: seconds per big file, milliseconds per small file. */
  cost: number;
  costUnit: 's/file' | 'ms/file';
  seconds: number;
  /** The engine's work during the phase; absent when no metrics could be read. */
  engine?: EngineView;
}

/** Runs `count` jobs over `threads` workers, each worker taking the next job. */
async function inParallel(threads: number, count: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await job(next++);
  };
  await Promise.all(Array.from({ length: Math.min(threads, count) }, worker));
}

export async function runBench(
  driver: BenchDriver,
  settings: BenchSettings,
  counters?: () => Promise<Counters | undefined>,
  onPhase?: (result: PhaseResult) => void,
): Promise<PhaseResult[]> {
  const block = randomBytes(settings.blockSize);
  const { threads } = settings;
  const smallTotal = settings.smallFiles * threads;
  const big = (i: number) => `big-${i}`;
  const small = (i: number) => `small-${i}`;
  const results: PhaseResult[] = [];
  const phase = async (name: string, count: number, bytes: number | undefined, job: (i: number) => Promise<void>) => {
    if (count === 0) return;
    const before = await counters?.();
    const started = performance.now();
    await inParallel(threads, count, job);
    const seconds = (performance.now() - started) / 1000;
    await driver.settle?.();
    const after = await counters?.();
    const perFile = (seconds * threads) / count;
    const result: PhaseResult =
      bytes === undefined
        ? { name, value: count / seconds, unit: 'files/s', cost: perFile * 1000, costUnit: 'ms/file', seconds }
        : { name, value: bytes / 1024 / 1024 / seconds, unit: 'MiB/s', cost: perFile, costUnit: 's/file', seconds };
    if (before && after) result.engine = viewBetween(before, after);
    results.push(result);
    onPhase?.(result);
  };

  await driver.setup();
  try {
    const bigCount = settings.bigFileSize > 0 ? threads : 0;
    await phase('Write big file', bigCount, settings.bigFileSize * bigCount, (i) =>
      driver.write(big(i), settings.bigFileSize, block),
    );
    await phase('Read big file', bigCount, settings.bigFileSize * bigCount, async (i) => {
      await driver.read(big(i), settings.blockSize);
    });
    for (let i = 0; i < bigCount; i++) await driver.remove(big(i));
    await phase('Write small file', smallTotal, undefined, (i) =>
      driver.write(small(i), settings.smallFileSize, block),
    );
    await phase('Read small file', smallTotal, undefined, async (i) => {
      await driver.read(small(i), settings.blockSize);
    });
    await phase('Stat file', smallTotal, undefined, (i) => driver.stat(small(i)));
    await phase('Delete file', smallTotal, undefined, (i) => driver.remove(small(i)));
  } finally {
    await driver.cleanup();
  }
  return results;
}

/** Files in a fresh directory under the mountpoint, removed afterwards. */
export function directoryDriver(mountpoint: string): BenchDriver {
  const dir = join(mountpoint, `__lilio-bench-${process.pid}-${Date.now()}`);
  return {
    description: dir,
    setup: () => mkdir(dir).then(() => undefined),
    write: async (name, size, block) => {
      const handle = await open(join(dir, name), 'w');
      try {
        for (let done = 0; done < size; done += block.length) {
          await handle.write(block, 0, Math.min(block.length, size - done));
        }
      } finally {
        await handle.close();
      }
    },
    read: async (name, blockSize) => {
      const handle = await open(join(dir, name), 'r');
      const buffer = Buffer.allocUnsafe(blockSize);
      let total = 0;
      try {
        for (;;) {
          const { bytesRead } = await handle.read(buffer, 0, blockSize);
          if (bytesRead === 0) return total;
          total += bytesRead;
        }
      } finally {
        await handle.close();
      }
    },
    stat: async (name) => {
      await stat(join(dir, name));
    },
    remove: (name) => unlink(join(dir, name)),
    cleanup: async () => {
      await rmdir(dir).catch(() => rm(dir, { recursive: true, force: true }));
    },
  };
}

/** Objects under a fresh prefix of the bucket, through the engine; removed afterwards. */
export function bucketDriver(lilio: Lilio, bucket: string): BenchDriver {
  const prefix = `__lilio-bench-${process.pid}-${Date.now()}/`;
  const written = new Set<string>();
  return {
    description: `${bucket}/${prefix}`,
    setup: async () => {
      await lilio.getBucket(bucket);
    },
    write: async (name, size, block) => {
      async function* body() {
        for (let done = 0; done < size; done += block.length)
          yield block.subarray(0, Math.min(block.length, size - done));
      }
      await lilio.putObject(bucket, prefix + name, body());
      written.add(name);
    },
    read: async (name) => {
      const reader = await lilio.openObject(bucket, prefix + name);
      let total = 0;
      for await (const piece of lilio.readObject(reader)) total += piece.length;
      return total;
    },
    stat: async (name) => {
      await lilio.statObject(bucket, prefix + name);
    },
    remove: async (name) => {
      await lilio.deleteObject(bucket, prefix + name);
      written.delete(name);
    },
    settle: () => lilio.chunks.drain(),
    cleanup: async () => {
      // After a failure: what this run wrote and did not delete.
      for (const name of written) await lilio.deleteObject(bucket, prefix + name).catch(() => undefined);
    },
  };
}
