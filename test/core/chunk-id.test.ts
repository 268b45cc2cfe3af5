import t from 'tap';
import { newChunkId, newVersionId } from '../../src/core/chunk-id.js';
import { isChunkId } from '../../src/core/names.js';

t.test('ids are 32 lowercase hex characters and do not repeat', async (t) => {
  const ids = new Set<string>();
  for (let i = 0; i < 10_000; i++) {
    const chunk = newChunkId();
    const version = newVersionId();
    if (!/^[0-9a-f]{32}$/.test(chunk) || !/^[0-9a-f]{32}$/.test(version)) t.fail(`bad id ${chunk} ${version}`);
    ids.add(chunk).add(version);
  }
  t.equal(ids.size, 20_000);
  t.ok(isChunkId(newChunkId()), 'backends accept them');
});
