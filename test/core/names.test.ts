import t from 'tap';
import { bucketNameProblem, isChunkId, keyProblem, validateKey } from '../../src/core/names.js';

t.test('bucket names follow S3 rules and refuse reserved words', async (t) => {
  for (const ok of ['photos', 'my-bucket.v2', 'abc', 'a'.repeat(63)]) t.equal(bucketNameProblem(ok), undefined, ok);
  for (const bad of [
    'ab',
    'a'.repeat(64),
    'Photos',
    'a_b',
    '-abc',
    'abc-',
    'a..b',
    'a.-b',
    '192.168.1.1',
    'admin',
    'health',
    'metrics',
  ])
    t.type(bucketNameProblem(bad), 'string', bad);
});

t.test('keys: utf-8 up to 1024 bytes, no NUL, no dot segments', async (t) => {
  for (const ok of ['a', 'dir/', 'a/b/c.txt', 'ünï/cödé', '.hidden', 'a..b']) t.equal(keyProblem(ok), undefined, ok);
  for (const bad of ['', 'a\0b', '/abs', 'a//b', '.', '..', 'a/../b', 'a/./b', '../x'])
    t.type(keyProblem(bad), 'object', JSON.stringify(bad));
  t.throws(() => validateKey('x'.repeat(1025)), { code: 'NAME_TOO_LONG' });
  t.throws(() => validateKey('a/../b'), { code: 'INVALID' });
  t.equal(
    keyProblem(`${'é'.repeat(100)}/`.repeat(5).slice(0, -1) + 'x'.repeat(19)),
    undefined,
    'multi-byte key of 1,024 bytes is allowed',
  );
  t.equal(keyProblem('é'.repeat(128))?.tooLong, true, 'a 256-byte segment is too long');
});

t.test('chunk ids are 32 lowercase hex characters', async (t) => {
  t.ok(isChunkId('0123456789abcdef0123456789abcdef'));
  t.notOk(isChunkId('../../etc/passwd'));
  t.notOk(isChunkId('0123456789ABCDEF0123456789ABCDEF'));
});
