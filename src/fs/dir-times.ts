import type { ObjectAttrs } from '../core/types.js';

/**
 * A directory's mtime and ctime move when entries are created, removed or
 * renamed in it (POSIX). Writing the directory's record on every such change
 * would double the metadata commits of `cp -r` or `rm -rf`, so:
 *
 * - this process sees the exact time at once (an in-memory overlay, newer
 *   than what is stored, applied to every stat of the directory);
 * - the stored record (the directory's marker, or the bucket record for a
 *   bucket's folder) is written at most once per PERSIST_INTERVAL_MS per
 *   directory. Other processes and later mounts therefore see a time at
 *   most that much older than the last change.
 * - a directory without a marker (it exists only because keys lie below it,
 *   e.g. written through the S3 API) gets no marker for this: its times
 *   are the overlay while this process runs, the mount's start time otherwise.
 *
 * Setting a directory's times explicitly (utimens, `touch -d`) drops its
 * overlay, so what was asked for is what is shown.
 */
export const PERSIST_INTERVAL_MS = 1_000;
const MAX_TRACKED = 10_000;

export class DirTimes {
  /** Last entry change per directory (bucket NUL dir key; '' is the bucket's folder). */
  private readonly changed = new Map<string, number>();
  /** When this process last stored a time for the directory. */
  private readonly persisted = new Map<string, number>();

  private static id(bucket: string, dirKey: string): string {
    return `${bucket}\u0000${dirKey}`;
  }

  /**
   * Records an entry change in bucket/dirKey now. Returns the time to store
   * when the stored record is due for an update, undefined otherwise.
   */
  touch(bucket: string, dirKey: string, now = Date.now()): number | undefined {
    const id = DirTimes.id(bucket, dirKey);
    if (this.changed.size > MAX_TRACKED) this.trim(now);
    this.changed.set(id, now);
    const last = this.persisted.get(id);
    if (last !== undefined && now - last < PERSIST_INTERVAL_MS) return undefined;
    this.persisted.set(id, now);
    return now;
  }

  /** The directory was just written with fresh times (mkdir): nothing to store for a while. */
  stored(bucket: string, dirKey: string, now = Date.now()): void {
    this.persisted.set(DirTimes.id(bucket, dirKey), now);
  }

  /** Its times were set explicitly, or it is gone: the stored record is the truth again. */
  drop(bucket: string, dirKey: string): void {
    const id = DirTimes.id(bucket, dirKey);
    this.changed.delete(id);
    this.persisted.delete(id);
  }

  /** The directory's attributes with a newer in-process change applied. */
  apply(bucket: string, dirKey: string, attrs: ObjectAttrs): ObjectAttrs {
    const at = this.changed.get(DirTimes.id(bucket, dirKey));
    if (at === undefined || (at <= attrs.mtimeMs && at <= attrs.ctimeMs)) return attrs;
    return { ...attrs, mtimeMs: Math.max(at, attrs.mtimeMs), ctimeMs: Math.max(at, attrs.ctimeMs) };
  }

  /** Old overlays are stored by now (or were throttled within the last interval): forget them. */
  private trim(now: number): void {
    for (const [id, at] of this.changed) {
      if (now - at > PERSIST_INTERVAL_MS * 10) {
        this.changed.delete(id);
        this.persisted.delete(id);
      }
    }
  }
}
