import { randomBytes } from 'node:crypto';
import t from 'tap';
import {
  DATA_KEY_BYTES,
  decryptChunk,
  ENCRYPTION_OVERHEAD,
  encryptChunk,
  generateDataKey,
  NONCE_BYTES,
  parseMasterKey,
  sha256Hex,
  TAG_BYTES,
  unwrapKey,
  wrapKey,
} from '../../src/core/crypto.js';

const CHUNK_ID = '0123456789abcdef0123456789abcdef';
const OTHER_CHUNK_ID = 'fedcba9876543210fedcba9876543210';

t.test('constants', async (t) => {
  t.equal(DATA_KEY_BYTES, 32);
  t.equal(ENCRYPTION_OVERHEAD, NONCE_BYTES + TAG_BYTES);
  t.equal(ENCRYPTION_OVERHEAD, 28);
  t.equal(generateDataKey().length, 32);
  t.not(generateDataKey().toString('hex'), generateDataKey().toString('hex'));
});

t.test('round trip, sizes 0 B to 1 MiB', async (t) => {
  const key = generateDataKey();
  for (const size of [0, 1, 15, 16, 17, 4096, 1024 * 1024]) {
    const plaintext = randomBytes(size);
    const stored = encryptChunk(key, CHUNK_ID, plaintext);
    t.equal(stored.length, size + ENCRYPTION_OVERHEAD, `${size} B stored as ${size} + 28`);
    t.ok(decryptChunk(key, CHUNK_ID, stored).equals(plaintext), `${size} B round trip`);
  }
  const view = new Uint8Array(randomBytes(100).buffer, 10, 50);
  t.ok(decryptChunk(key, CHUNK_ID, encryptChunk(key, CHUNK_ID, view)).equals(view), 'Uint8Array views round trip');
});

t.test('ciphertext never contains the plaintext', async (t) => {
  const key = generateDataKey();
  const marker = Buffer.from('LILIO-PLAINTEXT-MARKER-'.repeat(2000));
  const stored = encryptChunk(key, CHUNK_ID, marker);
  t.equal(stored.indexOf('LILIO-PLAINTEXT'), -1);
  t.equal(stored.indexOf(marker.subarray(0, 8)), -1);
});

t.test('a flipped bit anywhere is detected', async (t) => {
  const key = generateDataKey();
  const stored = encryptChunk(key, CHUNK_ID, Buffer.from('hello, integrity'));
  let detected = 0;
  for (let byte = 0; byte < stored.length; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      const damaged = Buffer.from(stored);
      damaged[byte]! ^= 1 << bit;
      try {
        decryptChunk(key, CHUNK_ID, damaged);
      } catch (err) {
        if ((err as { code?: string }).code === 'INTEGRITY') detected++;
      }
    }
  }
  t.equal(detected, stored.length * 8, `all ${stored.length * 8} single-bit flips rejected with INTEGRITY`);
  t.throws(() => decryptChunk(key, CHUNK_ID, stored.subarray(0, 27)), { code: 'INTEGRITY' }, 'short input');
  t.throws(
    () => decryptChunk(key, CHUNK_ID, stored.subarray(0, stored.length - 1)),
    { code: 'INTEGRITY' },
    'truncated',
  );
  t.throws(() => decryptChunk(key, CHUNK_ID, Buffer.alloc(0)), { code: 'INTEGRITY' }, 'empty');
});

t.test('a chunk decrypted under another chunk id or key fails', async (t) => {
  const key = generateDataKey();
  const stored = encryptChunk(key, CHUNK_ID, Buffer.from('bound to its id'));
  t.throws(() => decryptChunk(key, OTHER_CHUNK_ID, stored), { code: 'INTEGRITY' });
  t.throws(() => decryptChunk(generateDataKey(), CHUNK_ID, stored), { code: 'INTEGRITY' });
  t.throws(() => decryptChunk(Buffer.alloc(5), CHUNK_ID, stored), { code: 'INTEGRITY' }, 'malformed key');
  t.throws(() => encryptChunk(Buffer.alloc(16), CHUNK_ID, stored), { code: 'INVALID' }, 'AES-128 key refused');
});

t.test('nonces differ across calls', async (t) => {
  const key = generateDataKey();
  const plaintext = Buffer.from('same input every time');
  const nonces = new Set<string>();
  const ciphertexts = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const stored = encryptChunk(key, CHUNK_ID, plaintext);
    nonces.add(stored.subarray(0, NONCE_BYTES).toString('hex'));
    ciphertexts.add(stored.toString('hex'));
  }
  t.equal(nonces.size, 1000);
  t.equal(ciphertexts.size, 1000);
});

t.test('wrap and unwrap bucket keys', async (t) => {
  const master = generateDataKey();
  const dataKey = generateDataKey();
  const wrapped = wrapKey(master, dataKey, 'photos');
  t.type(wrapped, 'string');
  t.equal(Buffer.from(wrapped, 'base64').length, DATA_KEY_BYTES + ENCRYPTION_OVERHEAD);
  t.ok(unwrapKey(master, wrapped, 'photos').equals(dataKey));
  t.not(wrapKey(master, dataKey, 'photos'), wrapped, 'fresh nonce per wrap');
  t.throws(() => unwrapKey(generateDataKey(), wrapped, 'photos'), {
    code: 'INTEGRITY',
    message: /wrong master key or damaged bucket key/,
  });
  t.throws(() => unwrapKey(master, wrapped, 'videos'), { code: 'INTEGRITY' }, 'wrong bucket');
  t.throws(() => unwrapKey(master, wrapped.slice(0, 20), 'photos'), { code: 'INTEGRITY' }, 'damaged');
  t.throws(() => unwrapKey(master, '', 'photos'), { code: 'INTEGRITY' }, 'empty');
  // A key wrapped under the bucket-key label cannot be passed off as a chunk, nor the reverse.
  t.throws(() => decryptChunk(master, 'photos', Buffer.from(wrapped, 'base64')), { code: 'INTEGRITY' });
  t.throws(() => wrapKey(master, Buffer.alloc(16), 'photos'), { code: 'INVALID' });
});

t.test('parseMasterKey accepts exactly 32 bytes of base64', async (t) => {
  const key = generateDataKey();
  t.ok(parseMasterKey(key.toString('base64')).equals(key));
  t.ok(parseMasterKey(`  ${key.toString('base64')}\n`).equals(key), 'key file with trailing newline');
  for (const bad of [
    '',
    '   ',
    randomBytes(16).toString('base64'),
    randomBytes(33).toString('base64'),
    'not base64!',
    key.toString('hex'),
  ]) {
    t.throws(() => parseMasterKey(bad), { code: 'CONFIG' }, JSON.stringify(bad.slice(0, 12)));
  }
  try {
    parseMasterKey(randomBytes(31).toString('base64'));
  } catch (err) {
    t.match((err as Error).message, /32 bytes, got 31/);
  }
});

t.test('sha256Hex', async (t) => {
  t.equal(sha256Hex(Buffer.from('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  t.equal(sha256Hex(new Uint8Array(0)), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
});

t.test("encryptChunkInto writes the same stored format into a caller's buffer", async (t) => {
  const { decryptChunk, encryptChunkInto } = await import('../../src/core/crypto.js');
  const key = Buffer.alloc(32, 9);
  const plaintext = Buffer.from('the same bytes either way, '.repeat(1000));
  const target = Buffer.alloc(plaintext.length + 100, 0xee);
  const stored = encryptChunkInto(key, 'chunk-a', plaintext, target);
  t.equal(stored.length, plaintext.length + 28, 'a view of exactly the stored length');
  t.equal(stored.buffer, target.buffer, 'inside the target');
  t.equal(target[plaintext.length + 28], 0xee, 'nothing written past it');
  t.ok(decryptChunk(key, 'chunk-a', stored).equals(plaintext));
  t.throws(() => encryptChunkInto(key, 'chunk-a', plaintext, Buffer.alloc(plaintext.length + 27)), { code: 'INVALID' });
});
