import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Lilio } from '../../src/engine/lilio.js';
import { collect, pattern, pieces, testConfig } from '../fixtures/engine.js';
import { startFakeDrive } from '../fixtures/fake-drive.js';
import { startS3Server } from '../fixtures/s3.js';

// One replica on S3 (s3rver), one on Google Drive (the fake, through googleapis), one on a local disk:
// the engine builds all three from config entries through the backend registry.
const dir = mkdtempSync(join(tmpdir(), 'lilio-cloud-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const s3 = await startS3Server(t, ['lilio-engine']);
const drive = await startFakeDrive(t);
const credentialsFile = join(dir, 'drive-key.json');
writeFileSync(credentialsFile, JSON.stringify(drive.oauth.serviceAccountKey()));

const CHUNK = 64 * 1024;
const config = testConfig({
  storages: [
    s3.storage('s3', 'lilio-engine', 'chunks/'),
    { name: 'drive', type: 'gdrive', folderId: drive.folderId, credentialsFile, rootUrl: drive.rootUrl },
    { name: 'disk', type: 'local', path: join(dir, 'disk') },
  ],
  quorum: { n: 3, w: 2, r: 2 },
  chunkSize: CHUNK,
  inlineThreshold: 1024,
  backends: { timeoutMs: 10_000, probeIntervalMs: 1_000 },
  cache: { size: 0 },
});
const lilio = await Lilio.open(config);
t.teardown(() => lilio.close());

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

for (const encrypt of [false, true]) {
  const bucket = encrypt ? 'sealed' : 'plain';
  t.test(`${bucket} bucket: objects round-trip exactly over s3 + gdrive + local`, async (t) => {
    await lilio.createBucket(bucket, { encrypt });
    const objects = new Map<string, Buffer>([
      ['empty', Buffer.alloc(0)],
      ['inline.txt', Buffer.from(`small enough to live in its metadata record (${bucket})`)],
      ['one-chunk.bin', pattern(CHUNK, 7)],
      ['dir/multi.bin', pattern(3 * CHUNK + 12_345, encrypt ? 11 : 13)],
    ]);
    for (const [key, data] of objects) await lilio.putObject(bucket, key, pieces(data, 10_000));
    await lilio.chunks.drain();

    for (const [key, data] of objects) {
      const back = await collect(lilio.getObject(bucket, key));
      t.equal(back.length, data.length, `${key}: size`);
      t.equal(sha(back), sha(data), `${key}: bytes`);
    }

    const record = await lilio.headObject(bucket, 'dir/multi.bin');
    t.equal(record.chunks.length, 4);
    for (const name of ['s3', 'drive', 'disk']) {
      const backend = lilio.backends.backend(name)!;
      for (const chunk of record.chunks) {
        t.ok(chunk.replicas.includes(name), `${name} is in ${chunk.id.slice(0, 6)}'s replica set`);
        const stored = await backend.get(chunk.id);
        t.equal(sha(stored), chunk.checksum, `${name} holds a verified replica of ${chunk.id.slice(0, 6)}`);
      }
    }
    if (encrypt) {
      const plain = objects.get('dir/multi.bin')!;
      const drive = lilio.backends.backend('drive')!;
      const stored = await drive.get(record.chunks[0]!.id);
      t.equal(stored.length, CHUNK + 28, 'stored with nonce and tag');
      t.equal(stored.indexOf(plain.subarray(1000, 1064)), -1, 'Drive never sees the plaintext');
    }

    // A replica lost on one cloud backend: reads (no chunk cache) go on from the others, exactly.
    await lilio.backends.backend('s3')!.delete(record.chunks[0]!.id);
    await lilio.backends.backend('drive')!.delete(record.chunks[1]!.id);
    t.equal(sha(await collect(lilio.getObject(bucket, 'dir/multi.bin'))), sha(objects.get('dir/multi.bin')!));
  });
}

t.test('the backends report health and where they keep the chunks', async (t) => {
  const health = await lilio.backends.probeAll();
  for (const name of ['s3', 'drive', 'disk']) t.equal(health.get(name)?.ok, true, `${name} healthy`);
  t.match(await lilio.backends.backend('s3')!.info(), { location: /^s3:\/\/lilio-engine\/chunks\// });
  t.match(await lilio.backends.backend('drive')!.info(), { type: 'gdrive', totalBytes: Number });
});
