import type { ChunkRef, Extent, ObjectRecord } from './types.js';

/**
 * The layered layout of a file's content (ObjectRecord.layout 'extents'):
 * chunks place runs of their bytes at file offsets, later chunks win where
 * they overlap, and what no chunk covers is a hole. The file is cut into
 * windows of chunkSize bytes; no extent crosses a window boundary, so a read
 * of one window looks only at the layers of that window.
 *
 * Everything here is proportional to the chunks a file has, never to its
 * length: a 1 PiB file with one chunk written has one window with one layer.
 */

/** One chunk's extent inside one window. Layers of a window are kept oldest first. */
export interface Layer<C> {
  chunk: C;
  extent: Extent;
}

/** A run of bytes that a read takes from one chunk. */
export interface Segment<C> {
  chunk: C;
  /** The layer's extent it comes from. */
  extent: Extent;
  fileOffset: number;
  chunkOffset: number;
  length: number;
}

type LayoutFields = Pick<ObjectRecord, 'chunks' | 'chunkSize' | 'layout' | 'size'>;

export function isLayered(record: Pick<ObjectRecord, 'layout'>): boolean {
  return record.layout === 'extents';
}

/** The extents of a chunk of a record: explicit in the layered layout, implied by its position in a dense one. */
export function extentsOf(record: LayoutFields, index: number): Extent[] {
  const chunk = record.chunks[index]!;
  if (isLayered(record)) return chunk.extents ?? [];
  return [[index * record.chunkSize, 0, chunk.size]];
}

/** Every window's layers, oldest first, keyed by window index. */
export function windowLayers(record: LayoutFields): Map<number, Layer<ChunkRef>[]> {
  const windows = new Map<number, Layer<ChunkRef>[]>();
  record.chunks.forEach((chunk, index) => {
    for (const extent of extentsOf(record, index)) addLayer(windows, record.chunkSize, chunk, extent);
  });
  return windows;
}

export function addLayer<C>(windows: Map<number, Layer<C>[]>, chunkSize: number, chunk: C, extent: Extent): void {
  const window = Math.floor(extent[0] / chunkSize);
  let layers = windows.get(window);
  if (!layers) {
    layers = [];
    windows.set(window, layers);
  }
  layers.push({ chunk, extent });
}

/** Bytes a version stores for its content (what `du` counts): holes and overwritten bytes excluded. */
export function allocatedBytes(record: LayoutFields & Pick<ObjectRecord, 'inline'>): number {
  if (!isLayered(record)) return record.size;
  let bytes = 0;
  for (const [window, layers] of windowLayers(record)) {
    const start = window * record.chunkSize;
    const end = Math.min(record.size, start + record.chunkSize);
    for (const segment of visibleSegments(layers, start, end)) bytes += segment.length;
  }
  return bytes;
}

/**
 * The bytes of [from, to) that the layers show, newest first wins, as
 * segments in file order. Gaps between segments are holes (zeros).
 */
export function visibleSegments<C>(layers: readonly Layer<C>[], from: number, to: number): Segment<C>[] {
  const segments: Segment<C>[] = [];
  // Disjoint covered intervals, sorted: [start, end) pairs.
  const covered: Array<[number, number]> = [];
  for (let i = layers.length - 1; i >= 0; i--) {
    const { chunk, extent } = layers[i]!;
    const start = Math.max(from, extent[0]);
    const end = Math.min(to, extent[0] + extent[2]);
    if (start >= end) continue;
    for (const [s, e] of uncovered(covered, start, end)) {
      segments.push({ chunk, extent, fileOffset: s, chunkOffset: extent[1] + (s - extent[0]), length: e - s });
      cover(covered, s, e);
    }
    if (covered.length === 1 && covered[0]![0] <= from && covered[0]![1] >= to) break;
  }
  segments.sort((a, b) => a.fileOffset - b.fileOffset);
  return segments;
}

/** The parts of [start, end) that no interval of `covered` (sorted, disjoint) overlaps. */
function uncovered(covered: Array<[number, number]>, start: number, end: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let at = start;
  for (const [s, e] of covered) {
    if (e <= at) continue;
    if (s >= end) break;
    if (s > at) out.push([at, s]);
    at = Math.max(at, e);
    if (at >= end) break;
  }
  if (at < end) out.push([at, end]);
  return out;
}

/** Adds [start, end) to sorted disjoint intervals, merging neighbours. */
export function cover(intervals: Array<[number, number]>, start: number, end: number): void {
  let i = 0;
  while (i < intervals.length && intervals[i]![1] < start) i++;
  let s = start;
  let e = end;
  let j = i;
  while (j < intervals.length && intervals[j]![0] <= e) {
    s = Math.min(s, intervals[j]![0]);
    e = Math.max(e, intervals[j]![1]);
    j++;
  }
  intervals.splice(i, j - i, [s, e]);
}

/** Whether sorted disjoint intervals cover [start, end) entirely. */
export function covers(intervals: ReadonlyArray<[number, number]>, start: number, end: number): boolean {
  if (start >= end) return true;
  for (const [s, e] of intervals) if (s <= start && e >= end) return true;
  return false;
}

/**
 * The first offset at or after `offset` (and before `size`) that holds data
 * (`want: 'data'`) or is in a hole (`want: 'hole'`), as lseek(SEEK_DATA /
 * SEEK_HOLE) answers; undefined when there is none (ENXIO for SEEK_DATA).
 * The end of the file counts as a hole. `windows` must cover everything the
 * file shows, including unsealed bytes (pass them as layers too).
 */
export function seekContent<C>(
  windows: Map<number, readonly Layer<C>[]>,
  chunkSize: number,
  size: number,
  offset: number,
  want: 'data' | 'hole',
): number | undefined {
  if (offset >= size) return undefined;
  const keys = [...windows.keys()].filter((w) => (w + 1) * chunkSize > offset).sort((a, b) => a - b);
  let at = offset;
  for (const window of keys) {
    const start = window * chunkSize;
    const end = Math.min(size, start + chunkSize);
    if (want === 'hole' && start > at) return at;
    if (start >= size) break;
    const runs = visibleSegments(windows.get(window)!, Math.max(at, start), end);
    if (want === 'data') {
      if (runs.length > 0) return runs[0]!.fileOffset;
    } else {
      for (const run of runs) {
        if (run.fileOffset > at) return at;
        at = run.fileOffset + run.length;
      }
      if (at < end) return at;
    }
    at = Math.max(at, end);
  }
  return want === 'hole' ? Math.min(at, size) : undefined;
}

/**
 * The extents of a chunk of `size` bytes placed at `fileOffset`, cut at the
 * multiples of `chunkSize` (no extent crosses a window). A chunk no larger
 * than chunkSize yields at most two.
 */
export function extentsAt(fileOffset: number, size: number, chunkSize: number): Extent[] {
  const extents: Extent[] = [];
  let done = 0;
  while (done < size) {
    const at = fileOffset + done;
    const length = Math.min(size - done, chunkSize - (at % chunkSize));
    extents.push([at, done, length]);
    done += length;
  }
  return extents;
}
