/**
 * How a byte view can cross to another thread without a copy: shared memory
 * is shared as it is, and an ArrayBuffer the view owns outright is moved
 * (transferred; the sender's view becomes empty). A view into a larger or
 * shared-by-others ArrayBuffer (Node's small-buffer slab) must never be
 * moved, so it is copied into one of its own first.
 */
export function movable(view: Uint8Array): { view: Uint8Array; transfer?: ArrayBuffer } {
  const buffer = view.buffer;
  if (buffer instanceof SharedArrayBuffer) return { view };
  if (view.byteOffset === 0 && view.byteLength === buffer.byteLength) return { view, transfer: buffer };
  // Uint8Array's slice copies; Buffer's (a Buffer is a Uint8Array) would only make another view.
  const own = Uint8Array.prototype.slice.call(view);
  return { view: own, transfer: own.buffer as ArrayBuffer };
}

/** A Buffer over the same bytes as a view that came back from another thread. */
export function asBuffer(view: Uint8Array): Buffer {
  return Buffer.isBuffer(view) ? view : Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}
