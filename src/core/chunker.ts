import { InvalidError } from './errors.js';

/**
 * Cuts a byte stream into chunks of exactly chunkSize bytes (the last one
 * shorter; an empty stream yields nothing). Input pieces are copied straight
 * into the current chunk buffer, so memory stays at one chunk however large
 * the stream. Each yielded Buffer is a view of a buffer from `take()` and
 * belongs to the consumer from then on: it may be handed to a pool, so the
 * generator keeps no reference to it.
 */
export async function* splitIntoChunks(
  source: AsyncIterable<Uint8Array>,
  chunkSize: number,
  take: () => Buffer = () => Buffer.allocUnsafe(chunkSize),
): AsyncGenerator<Buffer> {
  if (!Number.isInteger(chunkSize) || chunkSize < 1) {
    throw new InvalidError(`chunk size must be a positive integer, got ${chunkSize}`);
  }
  let current: Buffer | undefined;
  let filled = 0;
  for await (const piece of source) {
    let offset = 0;
    while (offset < piece.length) {
      if (current === undefined) {
        current = take();
        if (current.length < chunkSize) {
          throw new InvalidError(`chunk buffer of ${current.length} bytes is smaller than the chunk size ${chunkSize}`);
        }
      }
      const n = Math.min(chunkSize - filled, piece.length - offset);
      current.set(offset === 0 && n === piece.length ? piece : piece.subarray(offset, offset + n), filled);
      filled += n;
      offset += n;
      if (filled === chunkSize) {
        const chunk = current.length === chunkSize ? current : current.subarray(0, chunkSize);
        current = undefined;
        filled = 0;
        yield chunk;
      }
    }
  }
  if (current !== undefined && filled > 0) yield current.subarray(0, filled);
}
