import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { ObjectRecord } from '../../src/core/types.js';
import { dumpMetadata, loadMetadata } from '../../src/meta/dump.js';
import { LocalMetadataStore } from '../../src/meta/local.js';
import { MemoryMetadataStore } from '../../src/meta/memory.js';
import type { MetadataStore } from '../../src/meta/store.js';
import { bucketRecord, chunkRef, objectDraft } from '../contracts/meta-fixtures.js';

async function dump(store: MetadataStore): Promise<{ lines: string[]; counts: unknown }> {
  const lines: string[] = [];
  const counts = await dumpMetadata(store, (line) => {
    lines.push(line);
  });
  return { lines, counts };
}

/** The dump without what a load legitimately changes: the header and the versions. */
function comparable(lines: string[]): unknown[] {
  return lines.slice(1).map((line) => {
    const value = JSON.parse(line);
    if (value.kind === 'object') delete value.object.version;
    return value;
  });
}

t.test('memory -> JSON lines -> local -> JSON lines is lossless but for versions', async (t) => {
  const source = new MemoryMetadataStore();
  await source.createBucket(bucketRecord('photos'));
  await source.createBucket({ ...bucketRecord('plain'), encrypted: false });
  await source.putObject(objectDraft('photos', 'a/b/c.jpg', { chunks: [chunkRef(), chunkRef(7)] }), 'absent');
  await source.putObject(objectDraft('photos', 'a/'), 'absent');
  await source.putObject(
    objectDraft('photos', 'ünï 😀', {
      chunks: [],
      inline: 'aGk=',
      xattrs: { 'user.x': 'eQ==' },
      contentType: 'text/plain',
      etag: '49f68a5c8493ec2c0bf489821c21fc3b',
    }),
    'absent',
  );
  await source.putObject(objectDraft('plain', 'link', { kind: 'symlink', chunks: [], inline: 'YS9i' }), 'absent');
  await source.putObject(objectDraft('photos', 'a/b/c.jpg'), 'any');
  await source.putObject(objectDraft('photos', 'multi', { layout: 'extents', etag: `${'e'.repeat(32)}-2` }), 'any');
  await source.queueGarbage([{ chunk: chunkRef(), queuedAt: 1234 }]);
  // An upload in progress owns its parts' chunks: the dump carries it and them.
  const upload = { id: `${'0'.repeat(12)}${'a'.repeat(24)}`, bucket: 'photos', key: 'up', initiated: 5, touchedAt: 5 };
  await source.createUpload(upload);
  for (const partNumber of [1, 2]) {
    const chunks = [chunkRef(), chunkRef()];
    const size = chunks.reduce((sum, c) => sum + c.size, 0);
    await source.putPart({
      uploadId: upload.id,
      partNumber,
      size,
      etag: 'f'.repeat(32),
      chunkSize: 1 << 20,
      chunks,
      uploadedAt: 10 + partNumber,
    });
  }

  const first = await dump(source);
  t.same(first.counts, { buckets: 2, objects: 5, uploads: 1, parts: 2, garbage: 3 });
  t.match(JSON.parse(first.lines[0]!), { kind: 'header', format: 1, store: 'memory' });
  t.ok(
    first.lines.findIndex((l) => l.includes('"kind":"bucket"') && l.includes('"plain"')) <
      first.lines.findIndex((l) => l.includes('"key":"link"')),
    "a bucket's line comes before its objects",
  );

  const dir = await mkdtemp(join(tmpdir(), 'lilio-dump-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const target = LocalMetadataStore.open({ path: dir });
  t.teardown(() => target.close());
  async function* stream() {
    for (const line of first.lines) yield `${line}\n`;
  }
  t.same(await loadMetadata(target, stream()), { buckets: 2, objects: 5, uploads: 1, parts: 2, garbage: 3 });
  const second = await dump(target);
  t.same(comparable(second.lines), comparable(first.lines));
  const tagged = (await target.getObject('photos', 'ünï 😀')) as ObjectRecord;
  t.equal(tagged.etag, '49f68a5c8493ec2c0bf489821c21fc3b', 'the S3 ETag survives dump and load');
  const before = (await source.getObject('photos', 'a/b/c.jpg')) as ObjectRecord;
  const after = (await target.getObject('photos', 'a/b/c.jpg')) as ObjectRecord;
  t.strictSame(after, { ...before, version: after.version }, 'records arrive whole, with a version of the new store');
  t.equal((await target.getObject('photos', 'multi'))?.etag, `${'e'.repeat(32)}-2`, 'ETags too');
  t.strictSame(await target.listParts(upload.id), await source.listParts(upload.id), 'uploads arrive with their parts');

  t.same(
    await loadMetadata(target, first.lines),
    { buckets: 2, objects: 5, uploads: 1, parts: 2, garbage: 3 },
    'loading again is accepted',
  );
});

t.test('load refuses bad input and names the line', async (t) => {
  const store = new MemoryMetadataStore();
  const bucket = JSON.stringify({ kind: 'bucket', bucket: bucketRecord('photos') });
  await t.rejects(loadMetadata(store, [bucket, '', '{oops']), { code: 'INVALID', message: /^line 3: not JSON/ });
  await t.rejects(loadMetadata(store, [JSON.stringify({ kind: 'object', object: { key: 'x' } })]), {
    code: 'INVALID',
    message: /^line 1: not a dump line/,
  });
  await t.rejects(loadMetadata(store, [JSON.stringify({ kind: 'header', format: 2 })]), { code: 'UNSUPPORTED' });
  const traversal = JSON.stringify({ kind: 'object', object: objectDraft('photos', 'a/../../etc') });
  await t.rejects(loadMetadata(store, [traversal]), { code: 'INVALID', message: /^line 1: invalid key/ });
  const orphan = JSON.stringify({ kind: 'object', object: objectDraft('nowhere', 'a') });
  await t.rejects(loadMetadata(store, [orphan]), { code: 'NOT_FOUND', message: /^line 1:/ });
  const other = JSON.stringify({ kind: 'bucket', bucket: { ...bucketRecord('photos'), chunkSize: 1 } });
  await t.rejects(loadMetadata(store, [other]), { code: 'EXISTS', message: /different settings/ });
});
