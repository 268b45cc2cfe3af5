import { availableParallelism } from 'node:os';
import { decryptChunk, encryptChunk, encryptChunkInto, sha256Hex } from '../core/crypto.js';
import { asBuffer, movable } from '../threads/movable.js';
import { WorkerPool } from '../threads/pool.js';

/**
 * Below this a chunk is hashed and encrypted on the calling thread: a hop to
 * a worker costs more than the work.
 */
const OFFLOAD_BYTES = 64 * 1024;

export interface SealedBytes {
  /** The stored form: the plaintext itself, or its ciphertext in the target given. */
  stored: Buffer;
  /** SHA-256 (hex) of the stored form. */
  checksum: string;
}

export type OpenedChunk =
  /** The bytes do not match the checksum: a damaged replica. */
  | { verified: false }
  /**
   * The bytes match. `plaintext` is set when the chunk decrypted (or needed
   * no key); `authentic: false` means the checksum matched but the ciphertext
   * does not authenticate under this key and id (wrong key, or a chunk
   * recorded under another id), which no other replica can cure.
   */
  | { verified: true; authentic: boolean; stored: Buffer; plaintext?: Buffer };

/**
 * Seals and opens chunks (AES-256-GCM when the bucket has a key, SHA-256
 * always) on worker threads, so the main thread only hands them over. Chunk
 * buffers are shared memory (the engine's pools allocate them so), which the
 * codec reads and writes in place.
 */
export class ChunkCodec {
  private readonly pool: WorkerPool | undefined;

  /** @param threads codec threads; 0 does everything on the calling thread. */
  constructor(threads = Math.min(2, availableParallelism())) {
    this.pool = threads > 0 ? new WorkerPool(import.meta.url, 'codec-worker', threads) : undefined;
  }

  /**
   * Hashes the stored form of a chunk, encrypting it first when `key` is set:
   * into `target` (at least ENCRYPTION_OVERHEAD bytes longer than the
   * plaintext) when given, else into a new buffer. `aad` binds the ciphertext
   * to its chunk id.
   */
  async seal(key: Buffer | undefined, aad: string, plaintext: Buffer, target?: Buffer): Promise<SealedBytes> {
    const offload =
      this.pool &&
      plaintext.byteLength >= OFFLOAD_BYTES &&
      isShared(plaintext) &&
      (!key || (target && isShared(target)));
    if (!offload && this.pool && plaintext.byteLength >= OFFLOAD_BYTES) {
      // Not shared memory (a burst past the pools): a copy moves to the codec thread, which costs
      // a memcpy here instead of the hash and the cipher.
      const copy = Uint8Array.prototype.slice.call(plaintext);
      const answer = await this.pool.run<{ checksum: string; stored: Uint8Array }>(
        'seal',
        { plaintext: copy, key: key && Uint8Array.from(key), aad, moved: true },
        [copy.buffer as ArrayBuffer],
      );
      return { stored: asBuffer(answer.stored), checksum: answer.checksum };
    }
    if (!offload) {
      const stored = key
        ? target
          ? encryptChunkInto(key, aad, plaintext, target)
          : encryptChunk(key, aad, plaintext)
        : plaintext;
      return { stored, checksum: sha256Hex(stored) };
    }
    const answer = await this.pool!.run<{ checksum: string; length?: number }>('seal', {
      plaintext,
      target,
      key: key && Uint8Array.from(key),
      aad,
    });
    const stored = key ? Buffer.from(target!.buffer, target!.byteOffset, answer.length) : plaintext;
    return { stored, checksum: answer.checksum };
  }

  /**
   * Checks stored bytes against their checksum and decrypts them when `key`
   * is set. The bytes may move to a codec thread on the way (the view passed
   * in becomes empty): use the buffers in the answer.
   */
  async open(key: Buffer | undefined, aad: string, stored: Buffer, checksum: string): Promise<OpenedChunk> {
    if (!this.pool || stored.byteLength < OFFLOAD_BYTES) return openHere(key, aad, stored, checksum);
    const { view, transfer } = movable(stored);
    const answer = await this.pool.run<{
      verified: boolean;
      authentic?: boolean;
      stored: Uint8Array;
      plaintext?: Uint8Array;
    }>('open', { stored: view, checksum, key: key && Uint8Array.from(key), aad }, transfer ? [transfer] : []);
    if (!answer.verified) return { verified: false };
    const back = asBuffer(answer.stored);
    if (!key) return { verified: true, authentic: true, stored: back, plaintext: back };
    if (!answer.authentic) return { verified: true, authentic: false, stored: back };
    return { verified: true, authentic: true, stored: back, plaintext: asBuffer(answer.plaintext!) };
  }

  async close(): Promise<void> {
    await this.pool?.close();
  }
}

function isShared(view: Uint8Array): boolean {
  return view.buffer instanceof SharedArrayBuffer;
}

function openHere(key: Buffer | undefined, aad: string, stored: Buffer, checksum: string): OpenedChunk {
  if (sha256Hex(stored) !== checksum) return { verified: false };
  if (!key) return { verified: true, authentic: true, stored, plaintext: stored };
  try {
    return { verified: true, authentic: true, stored, plaintext: decryptChunk(key, aad, stored) };
  } catch {
    return { verified: true, authentic: false, stored };
  }
}
