import t from 'tap';
import { collect, pieces, testEngine } from '../fixtures/engine.js';

const CHUNK = 64 * 1024;

t.test('encrypted buckets: backends and metadata never hold the plaintext', async (t) => {
  const { lilio, stores, meta } = await testEngine({ chunkSize: CHUNK, inlineThreshold: 4096 });
  t.teardown(() => lilio.close());
  const bucket = await lilio.createBucket('secret', { encrypt: true });
  t.ok(bucket.encrypted);
  t.type(bucket.wrappedKey, 'string');
  const marker = 'TOP-SECRET-PLAINTEXT-MARKER;';
  const data = Buffer.from(marker.repeat(Math.ceil((3 * CHUNK) / marker.length)));
  const small = Buffer.from(`${marker} small`);
  const big = await lilio.putObject('secret', 'big', pieces(data));
  await lilio.putObject('secret', 'small', pieces(small));
  await lilio.chunks.drain();
  t.equal(big.chunks[0]!.storedSize, CHUNK + 28, 'nonce and tag add 28 bytes');
  for (const store of stores.values()) {
    for await (const id of store.list()) {
      t.equal((await store.get(id)).indexOf('TOP-SECRET'), -1, `${store.name}/${id.slice(0, 6)} holds no plaintext`);
    }
  }
  const record = await meta.getObject('secret', 'small');
  t.type(record?.inline, 'string');
  t.equal(Buffer.from(record!.inline!, 'base64').indexOf('TOP-SECRET'), -1, 'inline data is encrypted too');
  t.ok((await collect(lilio.getObject('secret', 'big'))).equals(data));
  t.ok((await collect(lilio.getObject('secret', 'small'))).equals(small));
});

t.test('a chunk swapped in under another id does not decrypt', async (t) => {
  const { lilio, stores } = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0, cache: { size: 0 } });
  t.teardown(() => lilio.close());
  await lilio.createBucket('secret', { encrypt: true });
  const a = await lilio.putObject('secret', 'a', pieces(Buffer.alloc(CHUNK, 1)));
  const b = await lilio.putObject('secret', 'b', pieces(Buffer.alloc(CHUNK, 2)));
  await lilio.chunks.drain();
  // Make b's record point at a's stored bytes under b's id, checksum included: only the AAD can catch it.
  const chunkA = a.chunks[0]!;
  const chunkB = b.chunks[0]!;
  for (const name of chunkB.replicas)
    await stores.get(name)!.put(chunkB.id, await stores.get(chunkA.replicas[0]!)!.get(chunkA.id));
  await lilio.meta.putObject({ ...b, chunks: [{ ...chunkB, checksum: chunkA.checksum }] }, 'any');
  await t.rejects(collect(lilio.getObject('secret', 'b')), { code: 'INTEGRITY' });
});

t.test('the wrong master key cannot open an encrypted bucket', async (t) => {
  const { lilio, meta } = await testEngine();
  await lilio.createBucket('secret', { encrypt: true });
  await lilio.putObject('secret', 'k', pieces(Buffer.from('hello')));
  const { testEngine: again } = await import('../fixtures/engine.js');
  const other = await again({}, { meta });
  t.teardown(() => other.lilio.close());
  await t.rejects(collect(other.lilio.getObject('secret', 'k')), { code: 'INTEGRITY' });
});
