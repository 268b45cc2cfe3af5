import { hostname } from 'node:os';
import { describeError, NotFoundError } from '../core/errors.js';
import type { ChunkRef, ObjectRecord } from '../core/types.js';
import type { MetadataStore } from '../meta/store.js';

/** A read hold on one version's chunks; release it when the version is no longer read. */
export interface VersionHold {
  release(): Promise<void>;
}

export interface SessionOptions {
  ttlMs: number;
  /** What this process is, for `lilio status`: "lilio mount /mnt/lilio", "lilio server". */
  role: string;
  /** Sealed chunks are recorded as write holds this often, or as soon as this many wait. */
  flushMs?: number;
  flushAt?: number;
  /**
   * A read hold is recorded only once the read has lasted this long (a short
   * GET never writes to the store). Must stay well inside the grace period,
   * which protects a version between the read of its record and its hold.
   */
  readHoldDelayMs?: number;
  log?: (message: string) => void;
}

interface ReadHold {
  ids: string[];
  /** Its id in the store's current session; undefined until recorded (again). */
  storeId: string | undefined;
  recording: boolean;
}

const NO_HOLD: VersionHold = { release: async () => undefined };

/**
 * This process's session in the metadata store and what it holds there: the
 * chunks it sealed and has not committed (write holds) and the chunks of the
 * versions its readers and open files read (read holds). Garbage collection,
 * in any process, deletes none of them while the session lives.
 *
 * Opened on first use, renewed every ttl/3 on an unref'd timer. If a renewal
 * finds the session gone (the process stalled past its ttl and a gc reaped
 * it), a new one is opened and everything still held is recorded again.
 * Store failures are logged, never thrown at readers: the grace period still
 * covers a hold that could not be recorded for a while.
 *
 * Write holds are recorded in batches (a store write per sealed chunk would
 * cost throughput); the orphan scan leaves backend files younger than the grace
 * period alone, which covers the batching delay. A commit must call settle()
 * first: a hold landing after the commit that cleared it would outlive it, and
 * the chunk would be queued as garbage when the session ends.
 */
export class EngineSession {
  private id: Promise<string> | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  /** Sealed, hold not recorded yet. */
  private readonly pending = new Map<string, ChunkRef>();
  /** Sealed, hold recorded: what to record again under a new session. */
  private readonly writing = new Map<string, ChunkRef>();
  private flushing: Promise<void> | undefined;
  private readonly reads = new Set<ReadHold>();
  private readTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly log: (message: string) => void;

  constructor(
    private readonly meta: MetadataStore,
    private readonly options: SessionOptions,
  ) {
    this.log = options.log ?? ((message) => console.warn(`lilio: ${message}`));
  }

  /** The session id, opening the session if needed. */
  current(): Promise<string> {
    return this.id ?? this.adopt(this.open());
  }

  /** Files (versions) this process holds open, as reported at renewal. */
  get openFiles(): number {
    return this.reads.size;
  }

  // ---- write holds ----

  /** ChunkStore.seal reports every chunk it creates, before writing its replicas. */
  noteSealed(chunk: ChunkRef): void {
    if (this.closed) return;
    this.pending.set(chunk.id, chunk);
    if (this.pending.size >= (this.options.flushAt ?? 64)) void this.flushWrites();
    else this.flushTimer ??= setTimeout(() => void this.flushWrites(), this.options.flushMs ?? 50).unref();
  }

  /**
   * Before a commit that references `chunks`: their holds must not land after
   * it (the commit clears them). Unrecorded ones are never recorded now; one
   * being recorded is waited for.
   */
  async settle(chunks: readonly ChunkRef[]): Promise<void> {
    if (this.pending.size === 0 && this.writing.size === 0 && !this.flushing) return;
    for (const chunk of chunks) this.pending.delete(chunk.id);
    while (this.flushing) await this.flushing;
    for (const chunk of chunks) {
      this.pending.delete(chunk.id);
      this.writing.delete(chunk.id);
    }
  }

  /** Chunks deleted without ever being committed: their holds go. */
  async discarded(chunks: readonly ChunkRef[]): Promise<void> {
    await this.settle(chunks);
    if (!this.id) return;
    try {
      await this.meta.releaseWrites(
        await this.current(),
        chunks.map((c) => c.id),
      );
    } catch (err) {
      this.log(`could not release write holds: ${describeError(err)}`);
    }
  }

  /** Records every pending hold (write and read) now. */
  async flush(): Promise<void> {
    const reads = this.recordReads();
    // A batch in flight may leave chunks sealed meanwhile for the next one.
    await this.flushWrites();
    await this.flushWrites();
    await reads;
  }

  private flushWrites(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.flushing || this.pending.size === 0) return this.flushing ?? Promise.resolve();
    const batch = [...this.pending.values()];
    this.pending.clear();
    let failed = false;
    this.flushing = this.withSession((id) => this.meta.holdWrites(id, batch))
      .then(
        () => {
          for (const chunk of batch) this.writing.set(chunk.id, chunk);
        },
        (err) => {
          failed = true;
          this.log(`could not record write holds (retried): ${describeError(err)}`);
          for (const chunk of batch) this.pending.set(chunk.id, chunk);
        },
      )
      .finally(() => {
        this.flushing = undefined;
        // Sealed meanwhile: the next batch as usual; a failed batch: again after a pause.
        if (this.pending.size > 0 && !this.closed) {
          const pause = failed ? 1_000 : (this.options.flushMs ?? 50);
          this.flushTimer ??= setTimeout(() => void this.flushWrites(), pause).unref();
        }
      });
    return this.flushing;
  }

  // ---- read holds ----

  /**
   * Holds a version's chunks until released. The hold reaches the store only
   * if the read lasts past readHoldDelayMs (see SessionOptions). Never fails:
   * a hold that could not be recorded is retried at renewal.
   */
  async holdVersion(record: Pick<ObjectRecord, 'chunks'>): Promise<VersionHold> {
    if (record.chunks.length === 0 || this.closed) return NO_HOLD;
    const hold: ReadHold = { ids: record.chunks.map((c) => c.id), storeId: undefined, recording: false };
    this.reads.add(hold);
    const delay = this.options.readHoldDelayMs ?? 500;
    if (delay <= 0) await this.recordRead(hold);
    else this.readTimer ??= setTimeout(() => void this.recordReads(), delay).unref();
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        this.reads.delete(hold);
        const storeId = hold.storeId;
        hold.storeId = undefined;
        if (storeId === undefined || !this.id) return;
        try {
          await this.meta.releaseRead(await this.current(), storeId);
        } catch (err) {
          this.log(`could not release a read hold: ${describeError(err)}`);
        }
      },
    };
  }

  // ---- lifetime ----

  /** Ends the session: what it still holds for writing was never committed, and becomes garbage. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.renewTimer);
    clearTimeout(this.flushTimer);
    clearTimeout(this.readTimer);
    if (!this.id && this.pending.size === 0) return;
    try {
      await this.flushWrites();
      if (!this.id) return;
      await this.meta.closeSession(await this.id);
    } catch (err) {
      this.log(`could not close session: ${describeError(err)} (it expires by itself)`);
    }
  }

  private async open(): Promise<string> {
    const id = await this.meta.openSession(
      { pid: process.pid, host: hostname(), role: this.options.role, startedAt: Date.now() },
      this.options.ttlMs,
    );
    if (!this.renewTimer) {
      this.renewTimer = setInterval(() => void this.renew(), Math.max(10, Math.floor(this.options.ttlMs / 3)));
      this.renewTimer.unref();
    }
    return id;
  }

  private async renew(): Promise<void> {
    if (this.closed || !this.id) return;
    try {
      const id = await this.id;
      if (!(await this.meta.renewSession(id, this.options.ttlMs, this.openFiles))) await this.replace(id);
      await this.recordReads();
    } catch (err) {
      this.log(`could not renew session: ${describeError(err)}`);
    }
  }

  /** The session `lost` is gone: opens another and records again what is still held. */
  private replace(lost: string): Promise<string> {
    const id = this.id;
    if (!id) return this.current();
    return id.then((current) => {
      // Someone else replaced it already.
      if (current !== lost) return current;
      return this.adopt(
        (async () => {
          const fresh = await this.open();
          const writes = [...this.writing.values()];
          if (writes.length > 0) await this.meta.holdWrites(fresh, writes);
          let reads = 0;
          for (const hold of this.reads) {
            hold.storeId = await this.meta.holdRead(fresh, hold.ids);
            reads++;
          }
          this.log(
            `session ${lost} expired; opened ${fresh} and recorded its ${writes.length} write and ${reads} read holds again`,
          );
          return fresh;
        })(),
      );
    });
  }

  /** Makes `opening` the session; if it fails, the next use tries again. */
  private adopt(opening: Promise<string>): Promise<string> {
    this.id = opening;
    opening.catch(() => {
      if (this.id === opening) this.id = undefined;
    });
    return opening;
  }

  /** Runs a store call with the session id, once more under a new session if the store says it is gone. */
  private async withSession<T>(call: (id: string) => Promise<T>): Promise<T> {
    const id = await this.current();
    try {
      return await call(id);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      return call(await this.replace(id));
    }
  }

  /** Records the read holds not recorded yet (those still open once the delay is over). */
  private async recordReads(): Promise<void> {
    clearTimeout(this.readTimer);
    this.readTimer = undefined;
    await Promise.all([...this.reads].filter((h) => h.storeId === undefined).map((h) => this.recordRead(h)));
  }

  private async recordRead(hold: ReadHold): Promise<void> {
    if (hold.recording) return;
    hold.recording = true;
    try {
      const storeId = await this.withSession((id) => this.meta.holdRead(id, hold.ids));
      if (this.reads.has(hold)) hold.storeId = storeId;
      else await this.meta.releaseRead(await this.current(), storeId);
    } catch (err) {
      this.log(`could not record a read hold (retried at renewal): ${describeError(err)}`);
    } finally {
      hold.recording = false;
    }
  }
}
