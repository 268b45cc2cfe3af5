import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { UnavailableError } from '../../src/core/errors.js';
import { Lilio } from '../../src/engine/lilio.js';
import { Errno, toErrno } from '../../src/fs/errno.js';
import { Vfs } from '../../src/fs/vfs.js';
import { pattern, testConfig, testEngine } from '../fixtures/engine.js';
import { startEtcd } from '../fixtures/etcd.js';

// Races on the per-path OpenFile that every handle of a file shares, driven on the Vfs without
// FUSE. A gate on the engine's commit holds a commit in flight (or fails it) so that the other
// call lands exactly inside it.

const CHUNK = 64 * 1024;
const O_RDONLY = 0;
const O_RDWR = 2;
const O_TRUNC = 0o1000;

function vfsOf(lilio: Lilio): Vfs {
  return new Vfs(lilio, { readOnly: false, maxDirtyBuffers: 4, sealsInFlight: 2 });
}

async function setup(t: Test) {
  const engine = await testEngine({ chunkSize: CHUNK, inlineThreshold: 0 });
  t.teardown(() => engine.lilio.close());
  await engine.lilio.createBucket('bkt');
  return { lilio: engine.lilio, vfs: vfsOf(engine.lilio) };
}

/**
 * Holds the next commit of the engine: `entered` resolves when it arrives, and it proceeds on
 * `open()`, or fails with `fail(err)`.
 */
function gateNextCommit(lilio: Lilio) {
  const original = lilio.commitRecord.bind(lilio);
  let enter!: () => void;
  const entered = new Promise<void>((resolve) => {
    enter = resolve;
  });
  let decide!: (err?: unknown) => void;
  const decided = new Promise<unknown>((resolve) => {
    decide = resolve;
  });
  lilio.commitRecord = async (...args: Parameters<Lilio['commitRecord']>) => {
    lilio.commitRecord = original;
    enter();
    const err = await decided;
    if (err) throw err;
    return original(...args);
  };
  return { entered, open: () => decide(undefined), fail: (err: unknown) => decide(err) };
}

async function write(vfs: Vfs, fd: number, data: Buffer, at = 0): Promise<void> {
  await vfs.write(fd, data, data.length, at);
}

async function createFile(vfs: Vfs, path: string, data: Buffer): Promise<void> {
  const fd = await vfs.create(path, 0o644);
  await write(vfs, fd, data);
  await vfs.flush(fd);
  await vfs.release(fd);
}

async function contentOf(lilio: Lilio, key: string): Promise<Buffer> {
  const record = await lilio.headObject('bkt', key);
  const out = Buffer.alloc(record.size);
  await lilio.reader(await lilio.bucket('bkt'), record).readInto(out, 0, record.size);
  return out;
}

async function errnoOf(what: Promise<unknown>): Promise<number | undefined> {
  try {
    await what;
    return undefined;
  } catch (err) {
    return toErrno(err);
  }
}

t.test("a failed commit does not clear another handle's changes: its close reports the error", async (t) => {
  const { lilio, vfs } = await setup(t);
  const old = pattern(3 * CHUNK, 1);
  await createFile(vfs, '/bkt/f.bin', old);
  const a = await vfs.open('/bkt/f.bin', O_RDWR);
  const b = await vfs.open('/bkt/f.bin', O_RDWR);
  await write(vfs, a, pattern(100, 2), 10);
  await write(vfs, b, pattern(100, 3), CHUNK + 10);

  const gate = gateNextCommit(lilio);
  const flushA = errnoOf(vfs.flush(a));
  await gate.entered;
  gate.fail(new UnavailableError('the store is away'));
  t.equal(await flushA, Errno.EIO, "a's close fails");
  t.equal(await errnoOf(vfs.flush(b)), Errno.EIO, "b's close fails too: its data went with that commit");
  t.equal(await errnoOf(vfs.flush(b)), undefined, 'reported once, as Linux reports a writeback error');
  await vfs.release(a);
  await vfs.release(b);
  t.ok((await contentOf(lilio, 'f.bin')).equals(old), 'the old version is intact');
});

t.test('rm during an in-flight commit does not bring the file back', async (t) => {
  const { lilio, vfs } = await setup(t);
  await createFile(vfs, '/bkt/gone.bin', pattern(2 * CHUNK, 1));
  for (const [what, path] of [
    ['a rewrite', '/bkt/gone.bin'],
    ['a new file', '/bkt/new.bin'],
  ] as const) {
    const fd = what === 'a new file' ? await vfs.create(path, 0o644) : await vfs.open(path, O_RDWR);
    await write(vfs, fd, pattern(CHUNK + 5, 4));
    const gate = gateNextCommit(lilio);
    const closing = vfs.release(fd);
    await gate.entered;
    const removing = vfs.unlink(path);
    gate.open();
    await closing;
    await removing;
    t.equal(await errnoOf(vfs.getattr(path)), Errno.ENOENT, `${what}: gone for the mount`);
    t.equal(
      await errnoOf(lilio.headObject('bkt', path.slice('/bkt/'.length))),
      Errno.ENOENT,
      `${what}: gone from the store`,
    );
  }
});

t.test('chmod and truncate during a commit are not lost', async (t) => {
  const { lilio, vfs } = await setup(t);
  await createFile(vfs, '/bkt/mode.bin', pattern(2 * CHUNK, 1));
  let fd = await vfs.open('/bkt/mode.bin', O_RDWR);
  await write(vfs, fd, pattern(100, 5), 7);
  let gate = gateNextCommit(lilio);
  let closing = vfs.release(fd);
  await gate.entered;
  const chmod = vfs.chmod('/bkt/mode.bin', 0o600);
  gate.open();
  await closing;
  await chmod;
  t.equal((await lilio.headObject('bkt', 'mode.bin')).attrs.mode & 0o7777, 0o600, 'the mode was committed');
  t.equal((await vfs.getattr('/bkt/mode.bin')).mode & 0o7777, 0o600, 'and the mount shows it');

  fd = await vfs.open('/bkt/mode.bin', O_RDWR);
  await write(vfs, fd, pattern(100, 6), CHUNK + 7);
  gate = gateNextCommit(lilio);
  closing = vfs.release(fd);
  await gate.entered;
  const truncate = vfs.truncate('/bkt/mode.bin', 10);
  gate.open();
  await closing;
  await truncate;
  t.equal((await lilio.headObject('bkt', 'mode.bin')).size, 10, 'the cut was committed');
  t.equal((await vfs.getattr('/bkt/mode.bin')).size, 10, 'and the mount shows it');
});

t.test("a read-only close does not commit another process's half-written file", async (t) => {
  const { lilio, vfs } = await setup(t);
  const old = pattern(2 * CHUNK, 1);
  await createFile(vfs, '/bkt/shared.bin', old);
  const writer = await vfs.open('/bkt/shared.bin', O_RDWR);
  await write(vfs, writer, pattern(CHUNK, 7), 0);
  const reader = await vfs.open('/bkt/shared.bin', O_RDONLY);
  const seen = Buffer.alloc(10);
  await vfs.read(reader, seen, 10, 0);
  t.ok(seen.equals(pattern(CHUNK, 7).subarray(0, 10)), 'the reader sees what the writer wrote (one mount)');
  await vfs.flush(reader);
  await vfs.fsync(reader);
  await vfs.release(reader);
  t.ok((await contentOf(lilio, 'shared.bin')).equals(old), 'nothing was committed by the reader');
  await vfs.flush(writer);
  await vfs.release(writer);
  const expected = Buffer.concat([pattern(CHUNK, 7), old.subarray(CHUNK)]);
  t.ok((await contentOf(lilio, 'shared.bin')).equals(expected), "the writer's close commits it");
});

t.test('two processes on one etcd store: a stale edit fails cleanly, a rewrite wins', async (t) => {
  const etcd = await startEtcd(t);
  const data = mkdtempSync(join(tmpdir(), 'lilio-races-'));
  t.teardown(() => rmSync(data, { recursive: true, force: true }));
  const config = testConfig({
    chunkSize: CHUNK,
    inlineThreshold: 0,
    // Local disks on a loaded machine: the fixture's 2 s backend deadline is for memory backends.
    backends: { timeoutMs: 30_000, probeIntervalMs: 1_000 },
    metadata: { type: 'etcd', etcd: { endpoints: etcd.endpoints, prefix: `/races-${randomBytes(4).toString('hex')}` } },
    storages: [1, 2, 3].map((i) => ({ name: `disk-${i}`, type: 'local' as const, path: join(data, String(i)) })),
  });
  const one = await Lilio.open(config);
  t.teardown(() => one.close());
  const two = await Lilio.open(config);
  t.teardown(() => two.close());
  await one.createBucket('bkt');
  const [p, q] = [vfsOf(one), vfsOf(two)];
  const v1 = pattern(3 * CHUNK, 1);
  await createFile(p, '/bkt/doc.bin', v1);

  // Both open version 1 and edit different places; each process has its own OpenFile.
  const a = await p.open('/bkt/doc.bin', O_RDWR);
  const b = await q.open('/bkt/doc.bin', O_RDWR);
  await write(p, a, pattern(100, 2), 0);
  await write(q, b, pattern(100, 3), 2 * CHUNK);
  await p.flush(a);
  await p.release(a);
  const afterA = Buffer.concat([pattern(100, 2), v1.subarray(100)]);
  t.ok((await contentOf(one, 'doc.bin')).equals(afterA), "the first close commits a's edit");
  t.equal(await errnoOf(q.flush(b)), Errno.EIO, "b's edit of version 1 fails: it would drop a's acknowledged edit");
  await q.release(b);
  t.ok((await contentOf(two, 'doc.bin')).equals(afterA), "a's version stays, whole");

  // A rewrite from scratch (cp over the file) does not depend on what it replaces: the last close wins.
  const c = await p.open('/bkt/doc.bin', O_RDWR);
  const d = await q.open('/bkt/doc.bin', O_RDWR | O_TRUNC);
  await write(p, c, pattern(100, 4), 0);
  const rewrite = pattern(2 * CHUNK + 3, 5);
  await write(q, d, rewrite, 0);
  await p.flush(c);
  await p.release(c);
  t.equal(await errnoOf(q.flush(d)), undefined, 'the rewrite commits over the newer version');
  await q.release(d);
  t.ok((await contentOf(one, 'doc.bin')).equals(rewrite), 'the rewrite is the file, untorn');
});
