/**
 * The codec thread: seals and opens chunks off the main thread (see
 * chunk-codec.ts). It knows only the stored format of src/core/crypto.ts.
 */

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { TransferListItem } from 'node:worker_threads';
import { decryptChunk, encryptChunk, encryptChunkInto, sha256Hex } from '../core/crypto.js';
import { asBuffer, movable } from '../threads/movable.js';
import { type HandlerResult, serveRequests } from '../threads/protocol.js';

/**
 * This thread allocates few JS objects but a chunk's worth of cipher output
 * per chunk. V8 schedules collections by object allocation, so those buffers
 * would pile up to its external-memory limit (64 MB per thread) before one
 * frees them; a young-generation collection every few chunks keeps the
 * thread's garbage to a few megabytes. It costs well under a millisecond.
 */
const COLLECT_EVERY_BYTES = 8 * 1024 * 1024;
setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as (options?: { type: 'minor' | 'major' }) => void;
let allocatedSinceCollect = 0;

function allocated(bytes: number): void {
  allocatedSinceCollect += bytes;
  if (allocatedSinceCollect < COLLECT_EVERY_BYTES) return;
  allocatedSinceCollect = 0;
  collect({ type: 'minor' });
}

interface SealArgs {
  plaintext: Uint8Array;
  /** Shared memory to encrypt into (encrypted buckets). */
  target?: Uint8Array;
  /** The plaintext is a copy moved here: answer with the stored bytes, moved back. */
  moved?: boolean;
  key?: Uint8Array;
  aad: string;
}

interface OpenArgs {
  stored: Uint8Array;
  checksum: string;
  key?: Uint8Array;
  aad: string;
}

function seal({ plaintext, target, key, aad, moved }: SealArgs): HandlerResult {
  if (moved) return sealMoved(plaintext, key, aad);
  if (!key) return { result: { checksum: sha256Hex(plaintext) } };
  const stored = encryptChunkInto(Buffer.from(key.buffer, key.byteOffset, key.byteLength), aad, plaintext, target!);
  allocated(plaintext.byteLength);
  return { result: { checksum: sha256Hex(stored), length: stored.byteLength } };
}

/** A chunk whose plaintext was moved here (a copy the caller made): the stored form goes back moved. */
function sealMoved(plaintext: Uint8Array, key: Uint8Array | undefined, aad: string): HandlerResult {
  const stored = key
    ? encryptChunk(Buffer.from(key.buffer, key.byteOffset, key.byteLength), aad, asBuffer(plaintext))
    : plaintext;
  if (key) allocated(stored.byteLength);
  const back = movable(stored);
  return {
    result: { checksum: sha256Hex(stored), length: stored.byteLength, stored: back.view },
    transfer: back.transfer ? [back.transfer] : [],
  };
}

/**
 * Verifies, then decrypts. A mismatch is an answer, not an error: the caller
 * decides what a damaged replica means. The bytes go back as they came (moved
 * or shared), with the plaintext moved along.
 */
function open({ stored, checksum, key, aad }: OpenArgs): HandlerResult {
  const transfer: TransferListItem[] = [];
  const back = movable(stored);
  if (back.transfer) transfer.push(back.transfer);
  if (sha256Hex(stored) !== checksum) return { result: { verified: false, stored: back.view }, transfer };
  if (!key) return { result: { verified: true, stored: back.view }, transfer };
  let plaintext: Buffer;
  try {
    plaintext = decryptChunk(Buffer.from(key.buffer, key.byteOffset, key.byteLength), aad, stored);
    allocated(plaintext.byteLength);
  } catch {
    return { result: { verified: true, authentic: false, stored: back.view }, transfer };
  }
  const clear = movable(plaintext);
  if (clear.transfer) transfer.push(clear.transfer);
  return { result: { verified: true, authentic: true, stored: back.view, plaintext: clear.view }, transfer };
}

serveRequests({
  seal: (args) => seal(args as unknown as SealArgs),
  open: (args) => open(args as unknown as OpenArgs),
});
