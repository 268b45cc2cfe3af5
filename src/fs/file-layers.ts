import { addLayer, type Layer, visibleSegments } from '../core/extents.js';
import type { ChunkRef, Extent, ObjectRecord } from '../core/types.js';

/** A stored chunk as an open file uses it: committed already, or sealed by this mount since. */
export interface Piece {
  /** Age: a later piece wins where pieces overlap. */
  seq: number;
  /** Set once W replicas hold the chunk. */
  ref?: ChunkRef;
  /** Until then, what resolves to it. */
  pending?: Promise<ChunkRef>;
  /** Sealed by this mount since the last commit: deleted if it ends up unreferenced. */
  own: boolean;
  /** Layers that still show some of its bytes; at 0 it leaves the file. */
  layers: number;
}

export type DenseOrLayered = Pick<ObjectRecord, 'chunks'> & { layout?: 'extents' };

/**
 * The sealed content of an open file: for every window (chunkSize-aligned
 * span) the extents of the pieces that cover it, oldest first. Bytes that are
 * still in write buffers are not here (OpenFile lays them on top).
 *
 * Memory is proportional to the pieces, never to the file's length: holes are
 * windows with no layers, and growing a file adds nothing.
 */
export class FileLayers {
  readonly windows = new Map<number, Layer<Piece>[]>();
  /** Windows changed since the last tidy(): only those can hold shadowed layers. */
  private readonly changed = new Set<number>();
  /** Bytes each window shows, computed once per change (a commit sums them for `allocated`). */
  private readonly shown = new Map<number, number>();
  private seq = 0;
  private lowestSeq = 0;
  /** Pieces added since the last commit (committed() clears it). */
  private readonly added = new Set<Piece>();
  /** Pieces whose replicas are still being written. */
  private readonly landing = new Set<Piece>();

  constructor(
    readonly chunkSize: number,
    /** Told when a piece stops being shown anywhere (its last layer went). */
    private readonly onDropped: (piece: Piece) => void,
  ) {}

  /** The layers of a committed version, every piece not owned (the commit rule queues replaced ones as garbage). */
  static of(record: ObjectRecord, chunkSize: number, onDropped: (piece: Piece) => void): FileLayers {
    const layers = new FileLayers(chunkSize, onDropped);
    if (record.inline !== undefined) return layers;
    record.chunks.forEach((chunk, index) => {
      const extents: Extent[] =
        record.layout === 'extents'
          ? (chunk.extents ?? []).map((e) => [e[0], e[1], e[2]])
          : [[index * record.chunkSize, 0, chunk.size]];
      layers.add({ ref: chunk, own: false }, extents);
    });
    return layers;
  }

  /** Adds a piece on top of everything so far. Extents must not cross a window boundary. */
  add(piece: Pick<Piece, 'ref' | 'pending' | 'own'>, extents: Extent[]): Piece {
    const added: Piece = { ...piece, seq: this.seq++, layers: 0 };
    this.track(added);
    for (const extent of extents) {
      if (extent[2] <= 0) continue;
      addLayer(this.windows, this.chunkSize, added, extent);
      this.touch(Math.floor(extent[0] / this.chunkSize));
      added.layers++;
    }
    if (added.layers === 0) this.onDropped(added);
    return added;
  }

  /** Adds a piece beneath everything so far (an inline base turned into the file's oldest chunk). */
  addUnder(piece: Pick<Piece, 'ref' | 'pending' | 'own'>, extents: Extent[]): Piece {
    const added: Piece = { ...piece, seq: --this.lowestSeq, layers: 0 };
    this.track(added);
    for (const extent of extents) {
      if (extent[2] <= 0) continue;
      const window = Math.floor(extent[0] / this.chunkSize);
      const layers = this.windows.get(window);
      if (layers) layers.unshift({ chunk: added, extent });
      else this.windows.set(window, [{ chunk: added, extent }]);
      this.touch(window);
      added.layers++;
    }
    if (added.layers === 0) this.onDropped(added);
    return added;
  }

  /** Drops every layer of a window (a piece sealed over all of it, or a hole punched through it). */
  clearWindow(window: number): void {
    const layers = this.windows.get(window);
    if (!layers) return;
    this.windows.delete(window);
    this.touch(window);
    for (const layer of layers) this.release(layer.chunk);
  }

  /** Cuts everything at and past `size` (truncate). */
  cutAt(size: number): void {
    const cut = Math.floor(size / this.chunkSize);
    for (const window of [...this.windows.keys()]) {
      if (window > cut || (window === cut && size === cut * this.chunkSize)) this.clearWindow(window);
    }
    const layers = this.windows.get(cut);
    if (!layers) return;
    this.touch(cut);
    const kept = layers.filter((layer) => {
      const [at, within, length] = layer.extent;
      if (at >= size) {
        this.release(layer.chunk);
        return false;
      }
      if (at + length > size) layer.extent = [at, within, size - at];
      return true;
    });
    if (kept.length > 0) this.windows.set(cut, kept);
    else this.windows.delete(cut);
  }

  /**
   * Drops the layers that no byte shows any more (shadowed by newer ones), in
   * the windows changed since the last call; returns those windows. `size`
   * bounds the last window.
   */
  tidy(size: number): number[] {
    const windows = [...this.changed];
    this.changed.clear();
    for (const window of windows) {
      const layers = this.windows.get(window);
      if (!layers || layers.length < 2) continue;
      const start = window * this.chunkSize;
      const shown = new Set(
        visibleSegments(layers, start, Math.min(size, start + this.chunkSize)).map((s) => s.extent),
      );
      const kept = layers.filter((layer) => {
        if (shown.has(layer.extent)) return true;
        this.release(layer.chunk);
        return false;
      });
      this.windows.set(window, kept);
    }
    return windows;
  }

  /** Everything shown is committed now: no piece is this session's to delete any more. */
  committed(): void {
    for (const piece of this.added) piece.own = false;
    this.added.clear();
  }

  /** What the pieces still being written resolve to (a commit waits for all of them). */
  pending(): Promise<ChunkRef>[] {
    return [...this.landing].flatMap((piece) => (piece.pending ? [piece.pending] : []));
  }

  /** Distinct chunks a window's layers come from (what a read of the whole window fetches). */
  piecesIn(window: number): number {
    const layers = this.windows.get(window);
    if (!layers) return 0;
    return new Set(layers.map((l) => l.chunk)).size;
  }

  /** Every piece still shown, oldest first. */
  pieces(): Piece[] {
    const seen = new Set<Piece>();
    for (const layers of this.windows.values()) for (const layer of layers) seen.add(layer.chunk);
    return [...seen].sort((a, b) => a.seq - b.seq);
  }

  /**
   * The chunk list of a version with this content. Dense (no extents) when
   * the file is exactly one full chunk per window from the start, the last
   * one possibly short: what a sequential writer produces. Every piece must
   * have its ref by now.
   */
  toChunks(size: number): DenseOrLayered {
    const count = Math.ceil(size / this.chunkSize);
    if (this.windows.size === count && this.isDense(size, count)) {
      const chunks: ChunkRef[] = [];
      for (let w = 0; w < count; w++) chunks.push(withoutExtents(this.windows.get(w)![0]!.chunk.ref!));
      return { chunks };
    }
    const extentsOf = new Map<Piece, Extent[]>();
    for (const layers of this.windows.values()) {
      for (const layer of layers) {
        const list = extentsOf.get(layer.chunk);
        if (list) list.push(layer.extent);
        else extentsOf.set(layer.chunk, [layer.extent]);
      }
    }
    const chunks = this.pieces().map((piece) => {
      const extents = extentsOf.get(piece)!.sort((a, b) => a[0] - b[0]);
      return { ...withoutExtents(piece.ref!), extents: extents.map((e): Extent => [e[0], e[1], e[2]]) };
    });
    return { chunks, layout: 'extents' };
  }

  /** Bytes the layers show (what `du` counts); nothing shows past the size (cutAt removed it). */
  allocated(): number {
    let bytes = 0;
    for (const [window, layers] of this.windows) {
      let shown = this.shown.get(window);
      if (shown === undefined) {
        const start = window * this.chunkSize;
        shown = 0;
        for (const segment of visibleSegments(layers, start, start + this.chunkSize)) shown += segment.length;
        this.shown.set(window, shown);
      }
      bytes += shown;
    }
    return bytes;
  }

  private isDense(size: number, count: number): boolean {
    for (let w = 0; w < count; w++) {
      const layers = this.windows.get(w);
      if (layers?.length !== 1) return false;
      const { chunk, extent } = layers[0]!;
      const length = Math.min(this.chunkSize, size - w * this.chunkSize);
      if (chunk.layers !== 1 || chunk.ref?.size !== length) return false;
      if (extent[0] !== w * this.chunkSize || extent[1] !== 0 || extent[2] !== length) return false;
    }
    return true;
  }

  private track(piece: Piece): void {
    if (piece.own) this.added.add(piece);
    if (!piece.pending) return;
    this.landing.add(piece);
    piece.pending.then(
      () => this.landing.delete(piece),
      () => this.landing.delete(piece),
    );
  }

  private touch(window: number): void {
    this.changed.add(window);
    this.shown.delete(window);
  }

  private release(piece: Piece): void {
    piece.layers--;
    if (piece.layers === 0) this.onDropped(piece);
  }
}

function withoutExtents(ref: ChunkRef): ChunkRef {
  if (!ref.extents) return ref;
  const { extents: _extents, ...plain } = ref;
  return plain;
}
