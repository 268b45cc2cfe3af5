import { performance } from 'node:perf_hooks';
import type { ObjectRecord } from '../core/types.js';
import type { Collector } from '../metrics/collector.js';
import { ErrnoError } from './errno.js';

/**
 * What one open descriptor did, so the mount reports the same object
 * traffic as the API (lilio_objects_total, lilio_object_size_bytes,
 * lilio_request_duration_seconds with operation put/get): a commit of
 * written content is a put, timed from the open (or the previous commit);
 * a descriptor that read and never wrote is a get, timed open to close.
 * A FUSE-only deployment then fills the dashboard's traffic panels.
 */
export class HandleTraffic {
  private since = performance.now();
  private bytesRead = 0;
  private wrote = false;
  private readFailed = false;

  read(bytes: number): void {
    this.bytesRead += bytes;
  }

  /** A read that failed for the engine's reasons (EIO), not an ordinary errno answer. */
  readError(err: unknown): void {
    if (!(err instanceof ErrnoError)) this.readFailed = true;
  }

  write(): void {
    this.wrote = true;
  }

  /** Runs a commit of written content and records it as a put. */
  async put(collector: Collector, bucket: string, commit: () => Promise<ObjectRecord | undefined>): Promise<void> {
    try {
      const record = await commit();
      collector.recordObjectOp(bucket, 'put', (performance.now() - this.since) / 1000, true);
      if (record) collector.recordObjectSize(bucket, record.size);
    } catch (err) {
      collector.recordObjectOp(bucket, 'put', (performance.now() - this.since) / 1000, false);
      throw err;
    } finally {
      this.since = performance.now();
    }
  }

  /** The descriptor closes: a read-only one that read something was a get of a file this size. */
  closed(collector: Collector, bucket: string, size: number): void {
    if (this.wrote || (this.bytesRead === 0 && !this.readFailed)) return;
    collector.recordObjectOp(bucket, 'get', (performance.now() - this.since) / 1000, !this.readFailed);
    if (!this.readFailed) collector.recordObjectSize(bucket, size);
  }
}
