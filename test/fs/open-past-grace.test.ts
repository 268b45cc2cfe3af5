import t, { type Test } from 'tap';
import { Lilio } from '../../src/engine/lilio.js';
import { Errno, toErrno } from '../../src/fs/errno.js';
import { Vfs } from '../../src/fs/vfs.js';
import { collect, pattern, pieces, testEngine } from '../fixtures/engine.js';

// A file kept open in one process while another overwrites it and garbage collection runs with no
// grace at all: the open file's version stays readable, and its close (an edit of a version that
// was replaced meanwhile: EIO) leaves the other version whole, every chunk of it still on the
// backends. Two engines share one store and one set of
// backends, as two processes on one machine do; every step is driven in order.

const CHUNK = 64 * 1024;

async function everyChunkStored(t: Test, lilio: Lilio, bucket: string, key: string): Promise<void> {
  const record = await lilio.meta.getObject(bucket, key);
  t.ok(record, `${key} exists`);
  let missing = 0;
  for (const chunk of record?.chunks ?? []) {
    const held = await Promise.all(chunk.replicas.map((name) => lilio.backends.backend(name)!.stat(chunk.id)));
    if (held.every((size) => size === undefined)) missing++;
  }
  t.equal(missing, 0, 'no chunk of the committed version was deleted');
}

t.test('open past the grace period while another process overwrites, then closed', async (t) => {
  const a = await testEngine({ inlineThreshold: 0, gc: { graceSeconds: 0 } });
  const b = await Lilio.open(a.lilio.config, { backends: [...a.faults.values()], meta: a.meta, role: 'other' });
  t.teardown(async () => {
    await b.close().catch(() => undefined);
    await a.lilio.close();
  });
  await a.lilio.createBucket('shared', { chunkSize: CHUNK });
  const v1 = pattern(4 * CHUNK, 1);
  await a.lilio.putObject('shared', 'f', pieces(v1));

  // Process A opens v1 and changes a few bytes in the middle (a slice over v1's chunks).
  const vfs = new Vfs(a.lilio, { readOnly: false, maxDirtyBuffers: 8, sealsInFlight: 2 });
  const fd = await vfs.open('/shared/f', 2);
  const patch = pattern(100, 9);
  await vfs.write(fd, patch, patch.length, CHUNK + 10);
  // A read hold reaches the store once a file has been open 500 ms (the grace period covers less);
  // a file open past the grace period has long recorded it.
  await a.lilio.session.flush();

  // Process B replaces the file; v1's chunks are garbage now, and B collects with grace 0.
  const v2 = pattern(2 * CHUNK, 2);
  await b.putObject('shared', 'f', pieces(v2));
  const gc = await b.collectGarbage({ graceMs: 0 });
  t.equal(gc.deleted, 0, "nothing of v1 is deleted while A's session holds it");

  // A still reads its version, patched.
  const expected = Buffer.from(v1);
  patch.copy(expected, CHUNK + 10);
  const seen = Buffer.alloc(expected.length);
  t.equal(await vfs.read(fd, seen, seen.length, 0), seen.length);
  t.ok(seen.equals(expected), "A reads v1 and its own change, though B's version replaced it");

  // A closes: its commit conflicts with B's. A's edit of v1 would drop B's version under v1's other
  // bytes: it fails, and B's version stays.
  const closed = await vfs.flush(fd).then(
    () => undefined,
    (err: unknown) => toErrno(err),
  );
  t.equal(closed, Errno.EIO, "A's close reports that its edit was not committed");
  await vfs.release(fd);
  const after = await collect(await a.lilio.getObject('shared', 'f'));
  t.ok(after.equals(v2), "B's version stays, byte for byte");
  await b.collectGarbage({ graceMs: 0 });
  await everyChunkStored(t, a.lilio, 'shared', 'f');
  const again = await collect(b.getObject('shared', 'f'));
  t.ok(again.equals(v2), 'another process reads it after gc');
});

t.test('an unlinked file stays readable through its descriptor past gc with no grace', async (t) => {
  const a = await testEngine({ inlineThreshold: 0, gc: { graceSeconds: 0 } });
  t.teardown(() => a.lilio.close());
  await a.lilio.createBucket('shared', { chunkSize: CHUNK });
  const data = pattern(3 * CHUNK + 5, 4);
  await a.lilio.putObject('shared', 'gone', pieces(data));
  const vfs = new Vfs(a.lilio, { readOnly: false, maxDirtyBuffers: 8, sealsInFlight: 2 });
  const fd = await vfs.open('/shared/gone', 0);
  await a.lilio.session.flush();
  await vfs.unlink('/shared/gone');
  t.equal((await a.lilio.collectGarbage({ graceMs: 0 })).deleted, 0, 'held: nothing deleted');
  const seen = Buffer.alloc(data.length);
  t.equal(await vfs.read(fd, seen, seen.length, 0), data.length);
  t.ok(seen.equals(data), 'read through the open descriptor after unlink and gc');
  await vfs.release(fd);
  t.equal((await a.lilio.collectGarbage({ graceMs: 0 })).deleted, 4, 'collected after the last close');
});
