import { decryptChunk } from '../core/crypto.js';
import { isLayered, type Layer, visibleSegments, windowLayers } from '../core/extents.js';
import type { ChunkRef, ObjectRecord } from '../core/types.js';
import type { BucketContext, ChunkStore } from './chunk-store.js';
import { inlineAad } from './object-writer.js';

/** Chunks fetched ahead of a sequential reader. */
const READ_AHEAD_CHUNKS = 4;

/**
 * Reads one object version. It holds the record it was opened with, so it
 * keeps reading that version even after a newer one is committed (the old
 * chunks outlive the commit by the garbage grace period).
 */
export class ObjectReader {
  private inlineBytes: Buffer | undefined;
  private lastEnd = -1;
  /** Chunks fetched ahead of a sequential reader, by index; they bypass the shared cache. */
  private readonly ahead = new Map<number, Promise<Buffer>>();
  /** Layers by window, for a layered (sparse, sliced) version; built on first read. */
  private layers: Map<number, Layer<ChunkRef>[]> | undefined;

  constructor(
    private readonly chunks: ChunkStore,
    private readonly ctx: BucketContext,
    readonly record: ObjectRecord,
  ) {}

  get size(): number {
    return this.record.size;
  }

  /**
   * Copies up to target.length bytes at `position` into `target`; returns the
   * number copied (0 at or past the end). Sequential callers get read-ahead.
   */
  async readInto(target: Buffer, position: number, length = target.byteLength): Promise<number> {
    const end = Math.min(this.record.size, position + length);
    if (position >= end) return 0;
    if (this.record.inline !== undefined) {
      return this.inline().copy(target, 0, position, end);
    }
    if (isLayered(this.record)) return this.readLayered(target, position, end);
    const { chunkSize, chunks } = this.record;
    // The kernel's read-ahead sends several reads at once and they may arrive out of order, so
    // "sequential" means near where the last read ended, not exactly there.
    const sequential = this.lastEnd >= 0 && Math.abs(position - this.lastEnd) <= 2 * chunkSize;
    this.lastEnd = Math.max(end, sequential ? this.lastEnd : 0);
    const first = Math.floor(position / chunkSize);
    const last = Math.floor((end - 1) / chunkSize);
    if (sequential) {
      for (const index of this.ahead.keys()) if (index < first - 1) this.ahead.delete(index);
      // The chunks being read stay in the window too: the 128 KiB reads of one chunk share its fetch.
      for (let i = first; i <= Math.min(last + READ_AHEAD_CHUNKS, chunks.length - 1); i++) {
        if (this.ahead.has(i)) continue;
        const pending = this.chunks.read(this.ctx, chunks[i]!, false);
        // A failed read-ahead is retried (and reported) by the read that needs the chunk.
        pending.catch(() => this.ahead.delete(i));
        this.ahead.set(i, pending);
      }
    }
    const chunkAt = (i: number) => this.ahead.get(i) ?? this.chunks.read(this.ctx, chunks[i]!, !sequential);
    if (first === last) {
      const data = await chunkAt(first);
      return data.copy(target, 0, position - first * chunkSize, end - first * chunkSize);
    }
    const parts = await Promise.all(Array.from({ length: last - first + 1 }, (_, k) => chunkAt(first + k)));
    let copied = 0;
    for (let i = first; i <= last; i++) {
      const data = parts[i - first]!;
      const chunkStart = i * chunkSize;
      const from = Math.max(position, chunkStart) - chunkStart;
      const to = Math.min(end, chunkStart + data.byteLength) - chunkStart;
      copied += data.copy(target, copied, from, to);
    }
    return copied;
  }

  /** The bytes from start to end (exclusive), chunk by chunk, with a window of chunks fetched ahead. */
  async *stream(start = 0, end = this.record.size): AsyncGenerator<Buffer> {
    end = Math.min(end, this.record.size);
    if (start >= end) return;
    if (this.record.inline !== undefined) {
      yield this.inline().subarray(start, end);
      return;
    }
    if (isLayered(this.record)) {
      yield* this.streamLayered(start, end);
      return;
    }
    const { chunkSize, chunks } = this.record;
    const first = Math.floor(start / chunkSize);
    const last = Math.floor((end - 1) / chunkSize);
    const window: Array<Promise<Buffer>> = [];
    let next = first;
    const fill = () => {
      while (next <= last && window.length < READ_AHEAD_CHUNKS) {
        const pending = this.chunks.read(this.ctx, chunks[next++]!, false);
        pending.catch(() => undefined);
        window.push(pending);
      }
    };
    for (let i = first; i <= last; i++) {
      fill();
      const data = await window.shift()!;
      const chunkStart = i * chunkSize;
      const from = Math.max(start, chunkStart) - chunkStart;
      const to = Math.min(end, chunkStart + data.byteLength) - chunkStart;
      yield from === 0 && to === data.byteLength ? data : data.subarray(from, to);
    }
  }

  /** Copies [position, end) of a layered version: each window from its visible segments, holes as zeros. */
  private async readLayered(target: Buffer, position: number, end: number): Promise<number> {
    const { chunkSize } = this.record;
    const first = Math.floor(position / chunkSize);
    const last = Math.floor((end - 1) / chunkSize);
    await Promise.all(
      Array.from({ length: last - first + 1 }, (_, k) => {
        const window = first + k;
        const from = Math.max(position, window * chunkSize);
        const to = Math.min(end, (window + 1) * chunkSize);
        return this.fillWindow(target, from - position, window, from, to);
      }),
    );
    return end - position;
  }

  /** Writes file bytes [from, to) of one window into target at `at`. */
  private async fillWindow(target: Buffer, at: number, window: number, from: number, to: number): Promise<void> {
    this.layers ??= windowLayers(this.record);
    const layers = this.layers.get(window);
    const segments = layers ? visibleSegments(layers, from, to) : [];
    const parts = await Promise.all(segments.map((s) => this.chunks.read(this.ctx, s.chunk)));
    let filled = from;
    segments.forEach((segment, i) => {
      if (segment.fileOffset > filled) target.fill(0, at + filled - from, at + segment.fileOffset - from);
      parts[i]!.copy(target, at + segment.fileOffset - from, segment.chunkOffset, segment.chunkOffset + segment.length);
      filled = segment.fileOffset + segment.length;
    });
    if (to > filled) target.fill(0, at + filled - from, at + to - from);
  }

  /**
   * A layered version, window by window. Holes cost no I/O; a window is
   * assembled in a buffer of its own, at most chunkSize bytes, so memory stays
   * flat however long the file (a 1 PiB sparse file streams zeros).
   */
  private async *streamLayered(start: number, end: number): AsyncGenerator<Buffer> {
    const { chunkSize } = this.record;
    const first = Math.floor(start / chunkSize);
    const last = Math.floor((end - 1) / chunkSize);
    for (let window = first; window <= last; window++) {
      const from = Math.max(start, window * chunkSize);
      const to = Math.min(end, (window + 1) * chunkSize);
      const out = Buffer.allocUnsafe(to - from);
      await this.fillWindow(out, 0, window, from, to);
      yield out;
    }
  }

  private inline(): Buffer {
    if (!this.inlineBytes) {
      const stored = Buffer.from(this.record.inline ?? '', 'base64');
      this.inlineBytes = this.ctx.dataKey
        ? decryptChunk(this.ctx.dataKey, inlineAad(this.record.versionId), stored)
        : stored;
    }
    return this.inlineBytes;
  }
}
