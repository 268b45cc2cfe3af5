import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import t, { type Test } from 'tap';
import { type EtcdCluster, startEtcd } from '../fixtures/etcd.js';
import { isMounted, localDir, type MountedLilio, sleep, startMount } from '../fixtures/mount.js';

// Mounts sharing one etcd (and one set of backend directories): what one writes the other reads,
// across directories and renames; losing etcd members, then all of them, and getting them back.

const MiB = 1024 * 1024;

function configFor(t: Test, etcd: EtcdCluster, prefix: string, requestTimeoutMs = 5_000) {
  const data = localDir(t, 'lilio-etcd-data-');
  return {
    metadata: { type: 'etcd', etcd: { endpoints: etcd.endpoints, prefix, requestTimeoutMs } },
    storages: [1, 2, 3].map((i) => ({ name: `disk-${i}`, type: 'local', path: join(data, String(i)) })),
    quorum: { n: 3, w: 2, r: 2 },
  };
}

/** Retries `check` for a little longer than the kernel's 1 s attribute and entry cache. */
async function eventually<T>(check: () => Promise<T>, ms = 3_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(100);
    }
  }
}

async function errnoOf(what: Promise<unknown>): Promise<string | undefined> {
  try {
    await what;
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

t.test('two mounts on one etcd: writes, directories, renames, overwrites, deletes', async (t) => {
  const etcd = await startEtcd(t);
  const masterKey = randomBytes(32);
  const env = { LILIO_MASTER_KEY: masterKey.toString('base64') };
  const config = configFor(t, etcd, '/shared');
  const [a, b] = await Promise.all([startMount(t, { config, env }), startMount(t, { config, env })]);
  const at = (m: MountedLilio, ...parts: string[]) => join(m.dir, ...parts);

  await mkdir(at(a, 'photos'));
  t.ok((await eventually(() => readdir(b.dir))).includes('photos'), 'a bucket made in A shows in B');
  const created = await b.cli(['bucket', 'create', 'secret', '--encrypt']);
  t.equal(created.code, 0, 'an encrypted bucket made with the CLI against the same etcd', { stderr: created.stderr });

  for (const bucket of ['photos', 'secret']) {
    const one = randomBytes(3 * MiB + 11);
    const small = randomBytes(700);
    await mkdir(at(a, bucket, 'dir', 'sub'), { recursive: true });
    await writeFile(at(a, bucket, 'dir', 'sub', 'one.bin'), one);
    await writeFile(at(a, bucket, 'dir', 'small.txt'), small);
    t.ok(
      (await eventually(() => readFile(at(b, bucket, 'dir', 'sub', 'one.bin')))).equals(one),
      `${bucket}: B reads A's file`,
    );
    t.ok((await readFile(at(b, bucket, 'dir', 'small.txt'))).equals(small), `${bucket}: and its small one`);

    await mkdir(at(b, bucket, 'other'));
    await rename(at(b, bucket, 'dir', 'sub', 'one.bin'), at(b, bucket, 'other', 'moved.bin'));
    t.ok(
      (await eventually(() => readFile(at(a, bucket, 'other', 'moved.bin')))).equals(one),
      `${bucket}: A reads what B moved`,
    );
    t.equal(
      await eventually(async () => {
        const code = await errnoOf(stat(at(a, bucket, 'dir', 'sub', 'one.bin')));
        if (code !== 'ENOENT') throw new Error(`still there (${code})`);
        return code;
      }),
      'ENOENT',
      `${bucket}: and no longer finds it where it was`,
    );

    await rename(at(a, bucket, 'dir'), at(a, bucket, 'renamed'));
    t.ok(
      (await eventually(() => readFile(at(b, bucket, 'renamed', 'small.txt')))).equals(small),
      `${bucket}: B follows A's directory rename`,
    );
    t.same(
      (await eventually(() => readdir(at(b, bucket, 'renamed')))).sort(),
      ['small.txt', 'sub'],
      `${bucket}: with its empty subdirectory`,
    );

    const two = randomBytes(3 * MiB + 11);
    await writeFile(at(b, bucket, 'other', 'moved.bin'), two);
    t.ok(
      (await eventually(() => readFile(at(a, bucket, 'other', 'moved.bin')))).equals(two),
      `${bucket}: A opens B's new version`,
    );
    await rm(at(a, bucket, 'other', 'moved.bin'));
    t.equal(
      await eventually(async () => {
        const code = await errnoOf(readFile(at(b, bucket, 'other', 'moved.bin')));
        if (code !== 'ENOENT') throw new Error(`still there (${code})`);
        return code;
      }),
      'ENOENT',
      `${bucket}: B no longer finds what A deleted`,
    );
  }

  // Both mounts write one file at once: the last close wins whole, in both views.
  const versions = [randomBytes(2 * MiB + 5), randomBytes(2 * MiB + 5)];
  await Promise.all([a, b].map((m, i) => writeFile(at(m, 'photos', 'contended.bin'), versions[i]!)));
  const seenByA = await readFile(at(a, 'photos', 'contended.bin'));
  t.ok(
    versions.some((v) => v.equals(seenByA)),
    'two writers at once: one whole version, not a mix',
  );
  t.ok(
    (
      await eventually(async () => {
        const seenByB = await readFile(at(b, 'photos', 'contended.bin'));
        if (!seenByB.equals(seenByA)) throw new Error('B sees the other version');
        return seenByB;
      })
    ).equals(seenByA),
    'and both mounts see the same one',
  );

  // ls -l in B right after A changed a file: sizes come from the listing, which A's commit voided.
  await writeFile(at(a, 'photos', 'grows.txt'), 'x');
  t.equal((await eventually(() => stat(at(b, 'photos', 'grows.txt')))).size, 1);
  await readdir(at(b, 'photos'));
  await writeFile(at(a, 'photos', 'grows.txt'), 'xxxxx');
  t.equal(
    await eventually(async () => {
      const size = (await stat(at(b, 'photos', 'grows.txt'))).size;
      if (size !== 5) throw new Error(`size ${size}`);
      return size;
    }),
    5,
    'B sees the new size once its 1 s kernel cache has passed',
  );

  // Only wrapped bucket keys are in etcd: never the master key, in any encoding.
  const client = new Etcd3({ hosts: etcd.endpoints });
  try {
    const all = await client.getAll().prefix('/shared/').buffers();
    const needles = [masterKey, Buffer.from(masterKey.toString('base64')), Buffer.from(masterKey.toString('hex'))];
    const values = Object.values(all);
    t.ok(values.length > 10, `${values.length} values scanned`);
    t.notOk(
      values.some((value) => needles.some((needle) => value.includes(needle))),
      'no etcd value holds the master key',
    );
    t.ok(
      values.some((value) => value.includes('"wrappedKey"')),
      'the encrypted bucket holds its wrapped key',
    );
  } finally {
    client.close();
  }
});

t.test('three etcd members: one lost changes nothing; all lost is EIO in bounded time; they come back', async (t) => {
  const etcd = await startEtcd(t, { members: 3 });
  const m = await startMount(t, { config: configFor(t, etcd, '/failover', 1_500) });
  await mkdir(join(m.dir, 'photos'));
  const written = new Map<string, Buffer>();
  const step = async (i: number) => {
    const path = join(m.dir, 'photos', `f${i}.bin`);
    const data = randomBytes(i % 2 ? 200 : 300 * 1024);
    await writeFile(path, data);
    if (!(await readFile(path)).equals(data)) throw new Error(`${path} read back different`);
    written.set(path, data);
  };
  let failures = 0;
  const workload = (async () => {
    for (let i = 0; i < 30; i++) await step(i).catch(() => failures++);
  })();
  while (written.size < 8) await sleep(20);
  // The leader: its loss means an election in the middle of the writes.
  const leader = await etcd.leader();
  await leader.stop();
  await workload;
  t.equal(failures, 0, `the leader (${leader.name}) stopped in the middle of 30 writes and reads: all succeed`);

  // Killed, as a power cut would: etcd without quorum is slow to stop cleanly.
  await Promise.all(etcd.members.map((member) => member.stop('SIGKILL')));
  await sleep(1_200); // past the kernel's attribute cache: the next calls reach the mount
  for (const [what, call] of [
    ['create', () => writeFile(join(m.dir, 'photos', 'during.bin'), 'x')],
    ['lookup', () => stat(join(m.dir, 'photos', 'never-seen'))],
    ['readdir', () => readdir(join(m.dir, 'photos'))],
  ] as const) {
    const started = Date.now();
    const code = await errnoOf(call());
    const took = Date.now() - started;
    t.equal(code, 'EIO', `${what} without etcd fails with EIO`);
    // A liveness bound, not a speed check: the call must not hang.
    t.ok(took < 20_000, `${what} answered (${took} ms)`);
  }
  t.ok(isMounted(m.dir), 'the mount is still there');
  t.equal(m.stderr().includes('terminated: flushing'), false, 'and its process still runs');

  await Promise.all(etcd.members.map((member) => member.start()));
  await etcd.healthy();
  const started = Date.now();
  await eventually(() => step(100), 30_000);
  t.pass(`writes work again ${Date.now() - started} ms after the cluster is back`);
  for (const [path, data] of written) {
    if (!(await readFile(path)).equals(data)) t.fail(`${path} changed`);
  }
  t.pass(`all ${written.size} files written before the outage read back intact`);
  t.match(m.stderr(), /unavailable|did not answer/, 'the outage was logged by the mount');
});
