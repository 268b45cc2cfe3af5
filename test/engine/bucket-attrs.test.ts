import t from 'tap';
import type { BucketRecord, ObjectAttrs } from '../../src/core/types.js';
import { MemoryMetadataStore } from '../../src/meta/memory.js';
import { collect, pieces, testEngine } from '../fixtures/engine.js';

/**
 * A real memory store that runs `before` once, just before the next bucket
 * update commits: the interleaving another process could produce between the
 * engine's read of the bucket and its write.
 */
class InterleavedStore extends MemoryMetadataStore {
  before: (() => Promise<void>) | undefined;

  override async updateBucket(read: BucketRecord, attrs: ObjectAttrs): Promise<BucketRecord> {
    const hook = this.before;
    this.before = undefined;
    await hook?.();
    return super.updateBucket(read, attrs);
  }
}

t.test('a bucket re-created during a chmod keeps its new key', async (t) => {
  const meta = new InterleavedStore();
  const { lilio } = await testEngine({}, { meta });
  // A second engine on the same store and master key: the other process.
  const other = await testEngine({}, { meta });
  (other.lilio.config as { masterKey: unknown }).masterKey = lilio.config.masterKey;
  t.teardown(async () => {
    await other.lilio.close();
    await lilio.close();
  });
  const old = await lilio.createBucket('secret', { encrypt: true });
  const data = Buffer.from('written under the new data key');
  meta.before = async () => {
    await other.lilio.deleteBucket('secret');
    await other.lilio.createBucket('secret', { encrypt: true });
    await other.lilio.putObject('secret', 'after', pieces(data));
  };
  await t.rejects(
    lilio.updateBucketAttrs('secret', { mode: 0o700 }),
    { code: 'NOT_FOUND' },
    'the folder chmod-ed is gone',
  );
  const now = (await meta.getBucket('secret'))!;
  t.not(now.wrappedKey, old.wrappedKey, 'the re-created bucket keeps its own wrapped key');
  t.equal(now.attrs.mode, old.attrs.mode, 'and its own attributes');
  t.ok((await collect(lilio.getObject('secret', 'after'))).equals(data), 'objects written under it read back');
  t.ok((await collect(other.lilio.getObject('secret', 'after'))).equals(data), 'in either process');
});

t.test('a chmod racing a chown of the same bucket applies both', async (t) => {
  const meta = new InterleavedStore();
  const { lilio } = await testEngine({}, { meta });
  t.teardown(() => lilio.close());
  const created = await lilio.createBucket('photos', { encrypt: true });
  meta.before = async () => {
    await lilio.updateBucketAttrs('photos', { uid: 4242 });
  };
  const record = await lilio.updateBucketAttrs('photos', { mode: 0o700 });
  t.equal(record.attrs.mode, 0o700);
  t.equal(record.attrs.uid, 4242, 'the concurrent change is kept');
  t.equal(record.version, 2);
  t.equal(record.wrappedKey, created.wrappedKey);
  t.strictSame(await meta.getBucket('photos'), record);
  t.equal((await lilio.getBucket('photos')).attrs.mode, 0o700, 'the engine does not serve the old record');
});
