import type { Test } from 'tap';
import type { ObjectDraft, ObjectRecord } from '../../src/core/types.js';
import type { MetadataStore } from '../../src/meta/store.js';
import type { FreshStore } from './meta.js';
import { byteOrder, chunkRef, FUTURE, keysOf, listAll, objectDraft, summaryOf } from './meta-fixtures.js';

/** The metadata contract's namespace half: listing (levels, order, pages) and renames. */
export function listingContract(t: Test, fresh: FreshStore): void {
  const put = (store: MetadataStore, key: string, fields: Partial<ObjectDraft> = {}) =>
    store.putObject(objectDraft('photos', key, fields), 'any');

  t.test('list with a delimiter: one level, markers and implicit directories as prefixes', async (t) => {
    const store = await fresh(t);
    for (const key of ['a.txt', 'b/', 'c/d/e.txt', 'c/f.txt', 'c/g/', 'c/g/h', 'z', 'c/d/i/j/k']) await put(store, key);

    t.same(await keysOf(store, 'photos', { delimiter: '/' }), {
      objects: ['a.txt', 'z'],
      prefixes: ['b/', 'c/'],
      next: undefined,
    });
    t.same(await keysOf(store, 'photos', { prefix: 'c/', delimiter: '/' }), {
      objects: ['c/f.txt'],
      prefixes: ['c/d/', 'c/g/'],
      next: undefined,
    });
    t.same(
      await keysOf(store, 'photos', { prefix: 'c/g/', delimiter: '/' }),
      { objects: ['c/g/h'], prefixes: [], next: undefined },
      "the listed directory's own marker is not an entry",
    );
    t.same(await keysOf(store, 'photos', { prefix: 'c/d/', delimiter: '/' }), {
      objects: ['c/d/e.txt'],
      prefixes: ['c/d/i/'],
      next: undefined,
    });
    t.same(
      await keysOf(store, 'photos', { prefix: 'b/', delimiter: '/' }),
      { objects: [], prefixes: [], next: undefined },
      'empty directory',
    );
    t.same(await keysOf(store, 'photos', { prefix: 'nothing/', delimiter: '/' }), {
      objects: [],
      prefixes: [],
      next: undefined,
    });

    t.same(
      await keysOf(store, 'photos', { prefix: 'c/f', delimiter: '/' }),
      { objects: ['c/f.txt'], prefixes: [], next: undefined },
      'prefix inside a level',
    );
    t.same(await keysOf(store, 'photos', { prefix: 'c/g', delimiter: '/' }), {
      objects: [],
      prefixes: ['c/g/'],
      next: undefined,
    });
    t.same(await keysOf(store, 'photos', { prefix: 'c', delimiter: '/' }), {
      objects: [],
      prefixes: ['c/'],
      next: undefined,
    });
    t.same(await keysOf(store, 'photos', { prefix: 'c/d/i/j', delimiter: '/' }), {
      objects: [],
      prefixes: ['c/d/i/j/'],
      next: undefined,
    });
    t.same(await keysOf(store, 'photos', { prefix: 'b', delimiter: '/' }), {
      objects: [],
      prefixes: ['b/'],
      next: undefined,
    });

    const [summary] = (await store.list('photos', { prefix: 'c/f', delimiter: '/' })).objects;
    t.strictSame(
      summary,
      summaryOf((await store.getObject('photos', 'c/f.txt'))!),
      'a summary is the record without chunks and inline',
    );

    await store.deleteObject('photos', 'c/d/e.txt');
    t.same(
      (await keysOf(store, 'photos', { prefix: 'c/', delimiter: '/' })).prefixes,
      ['c/d/', 'c/g/'],
      'c/d/ still holds c/d/i/j/k',
    );
    await store.deleteObject('photos', 'c/d/i/j/k');
    t.same(
      (await keysOf(store, 'photos', { prefix: 'c/', delimiter: '/' })).prefixes,
      ['c/g/'],
      'an implicit directory goes with its last key',
    );
    await store.deleteObject('photos', 'c/g/h');
    t.same(
      (await keysOf(store, 'photos', { prefix: 'c/', delimiter: '/' })).prefixes,
      ['c/g/'],
      'a marker keeps its directory',
    );
    await put(store, 'c/g/h');
    await store.deleteObject('photos', 'c/g/');
    t.same(
      (await keysOf(store, 'photos', { prefix: 'c/', delimiter: '/' })).prefixes,
      ['c/g/'],
      'without its marker a directory lives on through its keys',
    );
    await store.deleteObject('photos', 'c/g/h');
    await store.deleteObject('photos', 'c/f.txt');
    t.same(await keysOf(store, 'photos', { delimiter: '/' }), {
      objects: ['a.txt', 'z'],
      prefixes: ['b/'],
      next: undefined,
    });
  });

  t.test('list without a delimiter: every key under the prefix, markers included', async (t) => {
    const store = await fresh(t);
    const keys = ['a.txt', 'b/', 'c/d/e.txt', 'c/f.txt', 'c/g/', 'c/g/h', 'c!', 'c0', 'z'];
    for (const key of keys) await put(store, key);
    t.same((await keysOf(store, 'photos')).objects, [...keys].sort(byteOrder));
    t.same((await keysOf(store, 'photos', { prefix: 'c/' })).objects, ['c/d/e.txt', 'c/f.txt', 'c/g/', 'c/g/h']);
    t.same((await keysOf(store, 'photos', { prefix: 'c/g' })).objects, ['c/g/', 'c/g/h']);
    t.same((await keysOf(store, 'photos', { prefix: 'c' })).objects, [
      'c!',
      'c/d/e.txt',
      'c/f.txt',
      'c/g/',
      'c/g/h',
      'c0',
    ]);
    t.same((await keysOf(store, 'photos', { prefix: 'y' })).objects, []);
    t.same((await store.list('photos', { prefix: 'c/' })).prefixes, [], 'no prefixes without a delimiter');
  });

  t.test('empty bucket lists nothing', async (t) => {
    const store = await fresh(t);
    t.strictSame(await store.list('photos'), { objects: [], prefixes: [] });
    t.strictSame(await store.list('photos', { delimiter: '/' }), { objects: [], prefixes: [] });
    t.strictSame(await store.list('photos', { delimiter: '/', prefix: 'a/', startAfter: 'a/b', limit: 1 }), {
      objects: [],
      prefixes: [],
    });
  });

  t.test('keys are listed in UTF-8 byte order', async (t) => {
    const store = await fresh(t);
    const keys = [
      'e',
      'é',
      'z',
      'Z',
      '日本/語',
      '日本/',
      '😀',
      '\uFFFD',
      '\uFF5E/x',
      'a b',
      'a-b',
      'a/b',
      'a~',
      'ab',
      'q\u{10FFFF}',
      'q\u{10FFFF}\u{10FFFF}x',
      'q\u{10FFFF}/y',
      'r',
    ];
    for (const key of keys) await put(store, key);
    const sorted = [...keys].sort(byteOrder);
    t.same((await keysOf(store, 'photos')).objects, sorted, 'recursive listing');
    t.same((await listAll(store, 'photos', { limit: 1 })).entries, sorted, 'one by one');
    const level = (await listAll(store, 'photos', { delimiter: '/', limit: 2 })).entries;
    const topLevel = [...new Set(keys.map((k) => (k.includes('/') ? k.slice(0, k.indexOf('/') + 1) : k)))];
    t.same(level, topLevel.sort(byteOrder), 'one level, page by page');
    t.equal(level.at(-1), '😀', 'astral characters sort after U+FFFD');
    t.same(
      (await keysOf(store, 'photos', { prefix: 'q\u{10FFFF}' })).objects,
      ['q\u{10FFFF}', 'q\u{10FFFF}/y', 'q\u{10FFFF}\u{10FFFF}x'],
      'prefix ending in U+10FFFF',
    );
    t.same(await keysOf(store, 'photos', { prefix: '日本/', delimiter: '/' }), {
      objects: ['日本/語'],
      prefixes: [],
      next: undefined,
    });
    t.same((await keysOf(store, 'photos', { prefix: '\uFF5E', delimiter: '/' })).prefixes, ['\uFF5E/']);
  });

  t.test('pagination returns every entry exactly once, objects and prefixes merged', async (t) => {
    const store = await fresh(t);
    const files = ['p/a', 'p/b0', 'p/c', 'p/d.txt', 'p/e', 'p/f', 'p/z'];
    const dirs = ['p/b/', 'p/c/', 'p/d/', 'p/y/'];
    for (const key of files) await put(store, key);
    await put(store, 'p/b/');
    await put(store, 'p/c/deep/x');
    await put(store, 'p/d/');
    await put(store, 'p/d/inner');
    await put(store, 'p/y/1');
    await put(store, 'other');
    const level = [...files, ...dirs].sort(byteOrder);
    for (const limit of [1, 2, 3, 5, 10, 11, 12, 1000]) {
      const { entries, pages } = await listAll(store, 'photos', { prefix: 'p/', delimiter: '/', limit });
      t.same(entries, level, `delimiter, limit ${limit}`);
      t.equal(pages, Math.max(1, Math.ceil(level.length / limit)), `delimiter, limit ${limit}: no empty last page`);
    }
    const all = (await keysOf(store, 'photos', { prefix: 'p/' })).objects;
    t.equal(all.length, 12);
    for (const limit of [1, 4, 12, 13]) {
      const { entries } = await listAll(store, 'photos', { prefix: 'p/', limit });
      t.same(entries, all, `recursive, limit ${limit}`);
    }
    const page = await store.list('photos', { prefix: 'p/', delimiter: '/', limit: 3 });
    t.same([page.objects.map((o) => o.key), page.prefixes, page.next], [['p/a', 'p/b0'], ['p/b/'], 'p/b0']);

    t.same(
      (await keysOf(store, 'photos', { prefix: 'p/', delimiter: '/', startAfter: 'p/c0' })).objects,
      ['p/d.txt', 'p/e', 'p/f', 'p/z'],
      'resumes after a key that does not exist',
    );
    t.same(
      (await keysOf(store, 'photos', { prefix: 'p/', delimiter: '/', startAfter: 'p/c/' })).prefixes,
      ['p/d/', 'p/y/'],
      'resumes after a prefix',
    );
    t.same(
      (await keysOf(store, 'photos', { prefix: 'p/', startAfter: 'p/c/' })).objects[0],
      'p/c/deep/x',
      'recursive: after a prefix comes what is under it',
    );
    t.same(
      (await keysOf(store, 'photos', { prefix: 'p/', delimiter: '/', startAfter: 'a' })).objects[0],
      'p/a',
      'a startAfter before the prefix starts at the prefix',
    );
    t.same(await keysOf(store, 'photos', { prefix: 'p/', startAfter: 'q' }), {
      objects: [],
      prefixes: [],
      next: undefined,
    });
    await t.rejects(store.list('photos', { limit: 0 }), { code: 'INVALID' });
    t.equal(
      (await store.list('photos', { limit: 50_000 })).objects.length,
      13,
      'an oversized limit is cut, not refused',
    );
  });

  t.test('renameObject', async (t) => {
    const store = await fresh(t);
    const shared = chunkRef();
    const source = await put(store, 'x/y/file', { chunks: [shared, chunkRef()], xattrs: { 'user.a': 'Yg==' } });
    const moved = await store.renameObject('photos', 'x/y/file', 'z/file', { replace: false });
    t.strictSame(moved, { ...source, key: 'z/file', version: moved.version }, 'content moves unchanged');
    t.ok(moved.version > source.version, 'the moved record gets a new version');
    t.equal(await store.getObject('photos', 'x/y/file'), undefined);
    t.strictSame(await store.getObject('photos', 'z/file'), moved);
    t.same(
      await keysOf(store, 'photos', { delimiter: '/' }),
      { objects: [], prefixes: ['z/'], next: undefined },
      'x/ went with its only key',
    );
    t.equal(await store.garbageCount(), 0, 'a rename frees no chunk');

    const target = await put(store, 'target', { chunks: [shared, chunkRef()] });
    await t.rejects(store.renameObject('photos', 'z/file', 'target', { replace: false }), { code: 'EXISTS' });
    t.strictSame(await store.getObject('photos', 'target'), target, 'no replace: target kept');
    t.strictSame(await store.getObject('photos', 'z/file'), moved, 'no replace: source kept');

    const replaced = await store.renameObject('photos', 'z/file', 'target', { replace: true });
    t.strictSame(replaced, { ...source, key: 'target', version: replaced.version });
    t.equal(await store.getObject('photos', 'z/file'), undefined);
    const garbage = await store.takeGarbage(FUTURE(), 100);
    t.same(
      garbage.map((g) => g.chunk),
      [target.chunks[1]],
      "the replaced target's own chunk is garbage; the one the source shares is not",
    );

    await t.rejects(store.renameObject('photos', 'missing', 'elsewhere', { replace: true }), { code: 'NOT_FOUND' });
    t.equal(await store.getObject('photos', 'elsewhere'), undefined);
    const same = await store.renameObject('photos', 'target', 'target', { replace: false });
    t.strictSame(same, replaced, 'onto itself: nothing happens');
    t.strictSame(await store.getObject('photos', 'target'), replaced);
    t.equal(await store.garbageCount(), 0);
  });

  t.test('renamePrefix moves a whole directory in one step', async (t) => {
    const store = await fresh(t);
    const keys = ['src/', 'src/a', 'src/sub/b', 'src/sub/deep/c', 'src/😀'];
    const before = new Map<string, ObjectRecord>();
    for (const key of keys) before.set(key, await put(store, key));
    await put(store, 'srcx');
    await put(store, 'src0/q');

    t.equal(await store.renamePrefix('photos', 'src/', 'dst/new/'), keys.length);
    for (const key of keys) {
      const old = before.get(key)!;
      const now = await store.getObject('photos', `dst/new/${key.slice(4)}`);
      t.strictSame(now, { ...old, key: `dst/new/${key.slice(4)}`, version: now?.version }, `${key} moved unchanged`);
      t.ok(now!.version > old.version, `${key}: new version`);
      t.equal(await store.getObject('photos', key), undefined, `${key} is gone`);
    }
    t.same(await keysOf(store, 'photos', { delimiter: '/' }), {
      objects: ['srcx'],
      prefixes: ['dst/', 'src0/'],
      next: undefined,
    });
    t.same(await keysOf(store, 'photos', { prefix: 'dst/', delimiter: '/' }), {
      objects: [],
      prefixes: ['dst/new/'],
      next: undefined,
    });
    t.same(await keysOf(store, 'photos', { prefix: 'dst/new/', delimiter: '/' }), {
      objects: ['dst/new/a', 'dst/new/😀'],
      prefixes: ['dst/new/sub/'],
      next: undefined,
    });
    t.same(await keysOf(store, 'photos', { prefix: 'dst/new/sub/', delimiter: '/' }), {
      objects: ['dst/new/sub/b'],
      prefixes: ['dst/new/sub/deep/'],
      next: undefined,
    });
    t.same(
      (await keysOf(store, 'photos', { prefix: 'src' })).objects,
      ['src0/q', 'srcx'],
      'keys that only share a string prefix stay',
    );

    t.equal(await store.renamePrefix('photos', 'nothing/', 'elsewhere/'), 0, 'an empty source moves nothing');
    await t.rejects(store.renamePrefix('photos', 'dst/', 'dst/new/inner/'), { code: 'INVALID' }, 'not into itself');
    await t.rejects(store.renamePrefix('photos', 'dst', 'other/'), { code: 'INVALID' });
    t.equal(await store.garbageCount(), 0);
  });

  t.test('renamePrefix: a non-empty target refuses and nothing moves; a target marker is replaced', async (t) => {
    const store = await fresh(t);
    await put(store, 'from/a');
    await put(store, 'from/b/c');
    await put(store, 'busy/x/y');
    const listing = async () => (await keysOf(store, 'photos')).objects;
    const snapshot = await listing();
    await t.rejects(store.renamePrefix('photos', 'from/', 'busy/'), { code: 'NOT_EMPTY' });
    await t.rejects(store.renamePrefix('photos', 'from/', 'busy/x/'), { code: 'NOT_EMPTY' });
    t.same(await listing(), snapshot, 'nothing moved');

    const markerChunk = chunkRef();
    await put(store, 'empty/', { chunks: [markerChunk] });
    t.equal(await store.renamePrefix('photos', 'from/', 'empty/'), 2);
    t.same(
      (await keysOf(store, 'photos', { prefix: 'empty/' })).objects,
      ['empty/a', 'empty/b/c'],
      'the old marker is replaced, not kept',
    );
    t.same(
      (await store.takeGarbage(FUTURE(), 10)).map((g) => g.chunk.id),
      [markerChunk.id],
      "the replaced marker's chunks are garbage",
    );

    const movedMarker = await put(store, 'm/');
    await put(store, 'm/file');
    await put(store, 'n/');
    await store.renamePrefix('photos', 'm/', 'n/');
    t.strictSame(
      await store.getObject('photos', 'n/'),
      { ...movedMarker, key: 'n/', version: (await store.getObject('photos', 'n/'))!.version },
      'the source marker becomes the target marker',
    );
    t.same(await keysOf(store, 'photos', { delimiter: '/' }), {
      objects: [],
      prefixes: ['busy/', 'empty/', 'n/'],
      next: undefined,
    });
  });
}
