import { createCipheriv, createDecipheriv, createHash, randomBytes, randomFillSync } from 'node:crypto';
import { ConfigError, IntegrityError, InvalidError } from './errors.js';

/**
 * AES-256-GCM for chunks and for wrapping bucket keys. A stored chunk is
 * nonce || ciphertext || tag; the associated data binds it to its chunk id,
 * so a replica swapped under another id fails to decrypt instead of
 * returning the wrong bytes.
 */

export const DATA_KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
export const ENCRYPTION_OVERHEAD = NONCE_BYTES + TAG_BYTES;

const ALGORITHM = 'aes-256-gcm';
const CIPHER_PIECE = 256 * 1024;
const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function generateDataKey(): Buffer {
  return randomBytes(DATA_KEY_BYTES);
}

function bucketKeyAad(bucket: string): string {
  return `lilio-bucket-key:${bucket}`;
}

/** The bucket's data key sealed by the master key, as stored in the bucket record. */
export function wrapKey(masterKey: Buffer, dataKey: Buffer, bucket: string): string {
  if (dataKey.length !== DATA_KEY_BYTES) throw new InvalidError(`a data key must be ${DATA_KEY_BYTES} bytes`);
  return encryptChunk(masterKey, bucketKeyAad(bucket), dataKey).toString('base64');
}

export function unwrapKey(masterKey: Buffer, wrapped: string, bucket: string): Buffer {
  let dataKey: Buffer;
  try {
    dataKey = decryptChunk(masterKey, bucketKeyAad(bucket), Buffer.from(wrapped, 'base64'));
  } catch {
    throw new IntegrityError(`bucket "${bucket}": wrong master key or damaged bucket key`);
  }
  if (dataKey.length !== DATA_KEY_BYTES) {
    throw new IntegrityError(`bucket "${bucket}": wrong master key or damaged bucket key`);
  }
  return dataKey;
}

/**
 * Encrypts with a fresh random nonce on every call: GCM is broken outright if
 * a nonce ever repeats under one key, and chunk ids alone are not a counter we
 * could trust across processes. Random 96-bit nonces stay safe for the 2^32
 * messages per key NIST allows, far beyond a bucket's chunk count.
 */
export function encryptChunk(key: Buffer, aad: string, plaintext: Uint8Array): Buffer {
  return encryptChunkInto(key, aad, plaintext, Buffer.allocUnsafe(plaintext.length + ENCRYPTION_OVERHEAD));
}

/** encryptChunk into a caller's buffer of at least plaintext.length + ENCRYPTION_OVERHEAD bytes; returns the stored view. */
export function encryptChunkInto(key: Buffer, aad: string, plaintext: Uint8Array, target: Uint8Array): Buffer {
  if (key.length !== DATA_KEY_BYTES) throw new InvalidError(`an encryption key must be ${DATA_KEY_BYTES} bytes`);
  const length = plaintext.length + ENCRYPTION_OVERHEAD;
  if (target.byteLength < length)
    throw new InvalidError(`encryption target holds ${target.byteLength} bytes, ${length} needed`);
  const out = Buffer.from(target.buffer, target.byteOffset, length);
  const nonce = out.subarray(0, NONCE_BYTES);
  randomFillSync(nonce);
  const cipher = createCipheriv(ALGORITHM, key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  // Node's cipher cannot write into a caller's buffer, so update() allocates
  // and we copy; in pieces, so that sealing a 64 MiB chunk does not allocate
  // another 64 MiB. The copy is cheap next to the encryption itself.
  let offset = NONCE_BYTES;
  for (let at = 0; at < plaintext.length; at += CIPHER_PIECE) {
    offset += cipher.update(plaintext.subarray(at, at + CIPHER_PIECE)).copy(out, offset);
  }
  offset += cipher.final().copy(out, offset);
  cipher.getAuthTag().copy(out, offset);
  return out;
}

/** The plaintext, only once the tag has verified; IntegrityError for any damage or mismatch. */
export function decryptChunk(key: Buffer, aad: string, stored: Uint8Array): Buffer {
  if (stored.length < ENCRYPTION_OVERHEAD) {
    throw new IntegrityError(`encrypted chunk is ${stored.length} bytes, shorter than its nonce and tag`);
  }
  const tagStart = stored.length - TAG_BYTES;
  try {
    const decipher = createDecipheriv(ALGORITHM, key, stored.subarray(0, NONCE_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(stored.subarray(tagStart));
    const plaintext = decipher.update(stored.subarray(NONCE_BYTES, tagStart));
    // GCM is a stream mode: final() emits no bytes, it only checks the tag.
    decipher.final();
    return plaintext;
  } catch {
    throw new IntegrityError('encrypted chunk does not authenticate (damaged, wrong key or wrong chunk id)');
  }
}

/**
 * The master key as configured (environment or key file): base64 of exactly
 * 32 bytes. Surrounding whitespace is tolerated because key files end in a
 * newline; the key itself never appears in an error message.
 */
export function parseMasterKey(base64: string): Buffer {
  const text = base64.trim();
  if (text.length === 0) throw new ConfigError('the master key is empty');
  if (!BASE64_PATTERN.test(text)) {
    throw new ConfigError(
      `the master key is not valid base64 (generate one with: openssl rand -base64 ${DATA_KEY_BYTES})`,
    );
  }
  const key = Buffer.from(text, 'base64');
  if (key.length !== DATA_KEY_BYTES) {
    throw new ConfigError(
      `the master key must decode to ${DATA_KEY_BYTES} bytes, got ${key.length} (generate one with: openssl rand -base64 ${DATA_KEY_BYTES})`,
    );
  }
  return key;
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
