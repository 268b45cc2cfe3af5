import { randomBytes } from 'node:crypto';
import t from 'tap';
import { decryptChunk, ENCRYPTION_OVERHEAD, encryptChunk, sha256Hex } from '../../src/core/crypto.js';
import { ChunkCodec } from '../../src/engine/chunk-codec.js';

const MiB = 1024 * 1024;

// Both paths of the codec: worker threads (shared-memory chunks of 64 KiB and more) and the
// calling thread (small chunks, or threads = 0). They must agree byte for byte with core/crypto.
for (const threads of [2, 0]) {
  t.test(`codec with ${threads} threads`, async (t) => {
    const codec = new ChunkCodec(threads);
    t.teardown(() => codec.close());
    const key = randomBytes(32);

    for (const size of [1000, 64 * 1024, MiB + 7]) {
      const plaintext = Buffer.from(new SharedArrayBuffer(size));
      plaintext.set(randomBytes(size));
      const original = Buffer.from(plaintext);

      const plain = await codec.seal(undefined, 'id-1', plaintext);
      t.equal(plain.stored, plaintext, `${size} B: an unencrypted chunk is stored as it is`);
      t.equal(plain.checksum, sha256Hex(original), `${size} B: SHA-256 of the stored bytes`);

      const target = Buffer.from(new SharedArrayBuffer(size + ENCRYPTION_OVERHEAD));
      const sealed = await codec.seal(key, 'id-1', plaintext, target);
      t.equal(sealed.stored.byteLength, size + ENCRYPTION_OVERHEAD);
      t.equal(sealed.stored.buffer, target.buffer, `${size} B: ciphertext written into the target`);
      t.equal(sealed.checksum, sha256Hex(sealed.stored));
      t.equal(sealed.stored.indexOf(original.subarray(0, 32)), -1, `${size} B: no plaintext in the stored form`);
      t.ok(decryptChunk(key, 'id-1', sealed.stored).equals(original), `${size} B: core/crypto decrypts it`);
      t.ok(plaintext.equals(original), `${size} B: the plaintext is left as it was`);

      // Open a copy in a plain ArrayBuffer of its own (as a backend returns it): it may be moved.
      const fetched = Buffer.from(sealed.stored);
      const opened = await codec.open(key, 'id-1', fetched, sealed.checksum);
      t.ok(opened.verified && opened.authentic, `${size} B: verifies and authenticates`);
      if (opened.verified) {
        t.ok(opened.plaintext?.equals(original), `${size} B: round-trips exactly`);
        t.ok(opened.stored.equals(sealed.stored), `${size} B: the stored bytes come back too`);
      }

      const flipped = Buffer.from(sealed.stored);
      flipped[flipped.length >> 1]! ^= 1;
      t.same(await codec.open(key, 'id-1', flipped, sealed.checksum), { verified: false }, `${size} B: a flipped bit`);

      const elsewhere = Buffer.from(sealed.stored);
      const wrongId = await codec.open(key, 'id-2', elsewhere, sealed.checksum);
      t.ok(wrongId.verified && !wrongId.authentic, `${size} B: checksum fine, but not under another chunk id`);
      t.notOk(wrongId.verified && wrongId.plaintext, `${size} B: and no plaintext for it`);

      const unencrypted = await codec.open(undefined, 'id-1', Buffer.from(original), plain.checksum);
      t.ok(unencrypted.verified && unencrypted.plaintext?.equals(original), `${size} B: plain chunks open as they are`);
    }

    // A slice of a bigger ArrayBuffer must not be moved away from its neighbours.
    const big = Buffer.from(randomBytes(2 * MiB));
    const slice = big.subarray(MiB, 2 * MiB);
    const stored = encryptChunk(key, 'id-3', slice).subarray(0);
    const holder = Buffer.concat([Buffer.from('head'), stored]);
    const view = holder.subarray(4);
    const before = Buffer.from(holder);
    const opened = await codec.open(key, 'id-3', view, sha256Hex(view));
    t.ok(opened.verified && opened.plaintext?.equals(slice), 'a view into a larger buffer opens');
    t.ok(holder.equals(before), 'and the larger buffer is untouched (copied, not moved)');
  });
}

// A chunk buffer beyond the shared pools (an ordinary Buffer) is copied to a codec thread, not
// hashed and encrypted on the calling thread; the caller's bytes are left as they were.
t.test('ordinary buffers are sealed on a codec thread from a copy', async (t) => {
  const codec = new ChunkCodec(2);
  t.teardown(() => codec.close());
  const key = randomBytes(32);
  const plaintext = randomBytes(MiB);
  const original = Buffer.from(plaintext);
  const plain = await codec.seal(undefined, 'id-2', plaintext);
  t.not(plain.stored, plaintext, 'the stored bytes are the copy that came back');
  t.ok(plain.stored.equals(original));
  t.equal(plain.checksum, sha256Hex(original));
  const sealed = await codec.seal(key, 'id-2', plaintext);
  t.equal(sealed.stored.byteLength, MiB + ENCRYPTION_OVERHEAD);
  t.equal(sealed.checksum, sha256Hex(sealed.stored));
  t.ok(decryptChunk(key, 'id-2', sealed.stored).equals(original), 'core/crypto decrypts it');
  t.ok(plaintext.equals(original), 'the plaintext is left as it was');
  t.ok(encryptChunk(key, 'id-2', original).byteLength === sealed.stored.byteLength);
});
