import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { localDir, ok, run, startMount } from '../fixtures/mount.js';

// Real files through a real mount: written with cp, compared with cmp, in a plain and an
// encrypted bucket, then again after a remount (from the backends, not any cache).

const MiB = 1024 * 1024;
const CHUNK = MiB;
const SIZES: Array<[string, number]> = [
  ['empty', 0],
  ['one-byte', 1],
  ['inline-max', 4 * 1024],
  ['inline-max-plus-1', 4 * 1024 + 1],
  ['chunk-minus-1', CHUNK - 1],
  ['chunk', CHUNK],
  ['chunk-plus-1', CHUNK + 1],
  ['hundred-mib', 100 * MiB],
];

/** Every file below `dir`, recursively. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

/**
 * The marker as stored raw, and as it shows inside any base64 text (three byte alignments,
 * without the characters at either end that depend on the neighbouring bytes).
 */
function needles(marker: Buffer): Buffer[] {
  const forms = [marker];
  for (let k = 0; k < 3; k++) {
    const encoded = Buffer.concat([Buffer.alloc(k), marker]).toString('base64');
    forms.push(Buffer.from(encoded.slice(4, -4)));
  }
  return forms;
}

/** The files under `dir` that hold any form of the marker. */
function holders(dir: string, marker: Buffer): string[] {
  const forms = needles(marker);
  return filesUnder(dir).filter((file) => {
    const bytes = readFileSync(file);
    return forms.some((form) => bytes.includes(form));
  });
}

t.test('cp and cmp round-trip every size, plain and encrypted, before and after a remount', async (t) => {
  const local = localDir(t);
  const m = await startMount(t);
  await ok(t, run('mkdir', [join(m.dir, 'plain')]), 'mkdir creates the plain bucket');
  const created = await m.cli(['bucket', 'create', 'secret', '--encrypt']);
  t.equal(created.code, 0, 'the CLI creates an encrypted bucket beside the running mount', { stderr: created.stderr });

  for (const [name, size] of SIZES) writeFileSync(join(local, name), randomBytes(size));
  // Text a reader would recognise, one marker per bucket: a small (inline) file and a multi-chunk one.
  const markers = new Map<string, Buffer>();
  for (const bucket of ['plain', 'secret']) {
    const marker = Buffer.from(`LILIO-PLAINTEXT-MARKER-${bucket}-${randomBytes(8).toString('hex')}`);
    markers.set(bucket, marker);
    writeFileSync(join(local, `${bucket}-small`), Buffer.concat([Buffer.from('note: '), marker, Buffer.from('\n')]));
    const line = Buffer.concat([marker, Buffer.from(' the quick brown fox\n')]);
    writeFileSync(
      join(local, `${bucket}-large`),
      Buffer.concat(Array(Math.ceil((2.5 * MiB) / line.length)).fill(line)),
    );
  }
  const namesOf = (bucket: string) => [...SIZES.map(([name]) => name), `${bucket}-small`, `${bucket}-large`];

  for (const bucket of ['plain', 'secret']) {
    for (const name of namesOf(bucket)) {
      await ok(t, run('cp', [join(local, name), join(m.dir, bucket, name)]), `cp ${bucket}/${name}`);
      await ok(t, run('cmp', [join(local, name), join(m.dir, bucket, name)]), `cmp ${bucket}/${name} (same mount)`);
    }
  }
  const listing = await ok(t, run('ls', ['-l', join(m.dir, 'secret')]), 'ls -l the encrypted bucket');
  for (const [name, size] of SIZES) t.match(listing.stdout, new RegExp(` ${size} .* ${name}\\n`), `ls shows ${name}`);

  await m.stop();
  const again = await m.remount();
  for (const bucket of ['plain', 'secret']) {
    for (const name of namesOf(bucket)) {
      t.equal(
        statSync(join(again.dir, bucket, name)).size,
        statSync(join(local, name)).size,
        `${bucket}/${name} size after remount`,
      );
      await ok(t, run('cmp', [join(local, name), join(again.dir, bucket, name)]), `cmp ${bucket}/${name} (remounted)`);
    }
  }

  await again.stop();

  const data = join(m.home, 'data');
  const meta = join(m.home, 'meta');
  // The scan must be able to see a marker at all: the plain bucket's copies show up.
  const plain = markers.get('plain')!;
  t.ok(holders(data, plain).length >= 3, 'control: the plain bucket chunks hold its marker (3 replicas)');
  t.ok(holders(meta, plain).length >= 1, 'control: the plain inline file shows in the metadata store');
  const secret = markers.get('secret')!;
  t.same(holders(data, secret), [], 'no backend file holds the plaintext of the encrypted bucket');
  t.same(holders(meta, secret), [], 'the metadata store holds no plaintext of the encrypted bucket (raw or base64)');
});
