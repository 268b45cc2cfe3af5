import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { localDir, type MountedLilio, ok, run, startMount } from '../fixtures/mount.js';

// The CLI and a running mount share one store: what one writes, the other reads.

const MiB = 1024 * 1024;
let m: MountedLilio;
let local: string;

t.before(async () => {
  m = await startMount(t);
  local = localDir(t);
  await ok(t, run('mkdir', [join(m.dir, 'shared')]), 'a bucket made through the mount');
  const created = await m.cli(['bucket', 'create', 'shared-enc', '--encrypt']);
  t.equal(created.code, 0, 'an encrypted bucket made with the CLI', { stderr: created.stderr });
});

for (const bucket of ['shared', 'shared-enc']) {
  t.test(`lilio put, read through the mount (${bucket})`, async (t) => {
    for (const [name, size] of [
      ['small', 100],
      ['multi', 3 * MiB + 5],
    ] as const) {
      const file = join(local, `put-${bucket}-${name}`);
      writeFileSync(file, randomBytes(size));
      const put = await m.cli(['put', file, `${bucket}/from-cli/${name}.bin`]);
      t.equal(put.code, 0, `lilio put ${name}`, { stderr: put.stderr });
      await ok(t, run('cmp', [file, join(m.dir, bucket, 'from-cli', `${name}.bin`)]), `cmp ${name} through the mount`);
    }
    t.same(readdirSync(join(m.dir, bucket, 'from-cli')).sort(), ['multi.bin', 'small.bin'], 'the mount lists them');
  });

  t.test(`cp through the mount, lilio get (${bucket})`, async (t) => {
    for (const [name, size] of [
      ['small', 10],
      ['multi', 2 * MiB + 1],
    ] as const) {
      const file = join(local, `cp-${bucket}-${name}`);
      writeFileSync(file, randomBytes(size));
      await ok(t, run('mkdir', ['-p', join(m.dir, bucket, 'from-mount')]), 'mkdir -p');
      await ok(t, run('cp', [file, join(m.dir, bucket, 'from-mount', `${name}.bin`)]), `cp ${name}`);
      const out = join(local, `got-${bucket}-${name}`);
      const get = await m.cli(['get', `${bucket}/from-mount/${name}.bin`, out]);
      t.equal(get.code, 0, `lilio get ${name}`, { stderr: get.stderr });
      await ok(t, run('cmp', [file, out]), `cmp ${name} from the CLI`);
    }
    const ls = await m.cli(['ls', `${bucket}/from-mount/`]);
    t.match(ls.stdout.toString(), /from-mount\/multi\.bin/, 'lilio ls sees the file');
  });
}

t.test('close-to-open: a version replaced with the CLI is what the next open through the mount reads', async (t) => {
  const first = join(local, 'v1');
  const second = join(local, 'v2');
  // Same size: only the content (and mtime) tell the versions apart.
  writeFileSync(first, randomBytes(MiB + 7));
  writeFileSync(second, randomBytes(MiB + 7));
  const target = join(m.dir, 'shared', 'versioned.bin');
  t.equal((await m.cli(['put', first, 'shared/versioned.bin'])).code, 0, 'put v1');
  await ok(t, run('cmp', [first, target]), 'the mount reads v1');
  t.equal((await m.cli(['put', second, 'shared/versioned.bin'])).code, 0, 'put v2 after the read closed');
  await ok(t, run('cmp', [second, target]), 'the next open reads v2');
  const bigger = join(local, 'v3');
  const smaller = join(local, 'v4');
  writeFileSync(bigger, randomBytes(2 * MiB + 1));
  writeFileSync(smaller, randomBytes(100));
  t.equal((await m.cli(['put', bigger, 'shared/versioned.bin'])).code, 0, 'put a bigger v3');
  await ok(t, run('cmp', [bigger, target]), 'the next open reads all of v3');
  t.equal((await m.cli(['put', smaller, 'shared/versioned.bin'])).code, 0, 'put a smaller (inline) v4');
  await ok(t, run('cmp', [smaller, target]), 'the next open reads v4 and no more');

  // And the other way: the mount replaces it, the CLI reads the new one.
  await ok(t, run('cp', [first, target]), 'cp v1 over it through the mount');
  const out = join(local, 'back');
  t.equal((await m.cli(['get', 'shared/versioned.bin', out])).code, 0, 'lilio get');
  t.ok(readFileSync(out).equals(readFileSync(first)), 'the CLI reads what the mount wrote last');
});
