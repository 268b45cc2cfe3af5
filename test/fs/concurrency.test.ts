import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t, { type Test } from 'tap';
import { localDir, type MountedLilio, ok, run, sh, sleep, startMount, testFuse } from '../fixtures/mount.js';

// Several processes on one file at once: appenders and a reader, and readers of a file that is
// unlinked or replaced under them.

const MiB = 1024 * 1024;
const LINES = 150;
let m: MountedLilio;
let local: string;

t.before(async () => {
  m = await startMount(t);
  local = localDir(t);
  await ok(t, run('mkdir', [join(m.dir, 'busy')]), 'a bucket');
});

t.test('two appenders and a reader: every line intact, none lost', async (t) => {
  const file = join(m.dir, 'busy', 'log.txt');
  await ok(t, sh(': > "$1"', [file]), 'an empty log');
  const append = 'i=1; while [ $i -le "$3" ]; do echo "$2-$i-padding-to-make-lines-longer" >> "$1"; i=$((i+1)); done';
  const snapshots = join(local, 'snapshots');
  const reader = sh('n=0; while [ $n -lt 400 ] && [ ! -e "$3" ]; do cat "$1"; echo "$2"; n=$((n+1)); done > "$4"', [
    file,
    '=====',
    join(local, 'writers-done'),
    snapshots,
  ]);
  const writers = await Promise.all([sh(append, [file, 'a', String(LINES)]), sh(append, [file, 'b', String(LINES)])]);
  writeFileSync(join(local, 'writers-done'), '');
  const read = await reader;
  t.equal(writers[0]!.code, 0, 'writer a', { stderr: writers[0]!.stderr });
  t.equal(writers[1]!.code, 0, 'writer b', { stderr: writers[1]!.stderr });
  t.equal(read.code, 0, 'reader', { stderr: read.stderr });

  const line = /^([ab])-(\d+)-padding-to-make-lines-longer$/;
  /** What is wrong with a view of the log (undefined: whole lines, each writer's in order, none missing). */
  const problem = (text: string, complete: boolean): string | undefined => {
    const lines = text.split('\n');
    const last = lines.pop();
    if (last !== '') return `ends inside a line: ${JSON.stringify(last?.slice(-80))}`;
    const next = { a: 1, b: 1 };
    for (const l of lines) {
      const match = line.exec(l);
      if (!match) return `a torn or mixed line: ${JSON.stringify(l.slice(0, 120))}`;
      const who = match[1] as 'a' | 'b';
      if (Number(match[2]) !== next[who]) {
        return `${who}-${next[who]} expected, got ${l.slice(0, 12)}: lost or repeated`;
      }
      next[who]++;
    }
    if (complete && (next.a !== LINES + 1 || next.b !== LINES + 1)) {
      return `${next.a - 1} lines of a and ${next.b - 1} of b, expected ${LINES} each`;
    }
    return undefined;
  };

  const views = (await readFile(snapshots, 'utf8')).split('=====\n');
  views.pop();
  t.ok(views.length > 0, `the reader took ${views.length} snapshots while the writers ran`);
  // A view holding NUL bytes is the kernel's doing, not ours: an open that drops the page cache
  // (auto_cache) while another descriptor's write is in flight lets a read refill the page
  // without that write, zero-padded, and the write's completion then extends the size over the
  // zeros. The daemon never returns them (traced: every READ it answers is NUL-free); counted
  // apart, as a known issue. The final file below must be exact.
  const zeroed = views.filter((view) => view.includes('\0'));
  const broken = views
    .map((view, i) => ({ i, why: view.includes('\0') ? undefined : problem(view, false) }))
    .filter((v) => v.why !== undefined);
  t.same(broken.slice(0, 5), [], `every snapshot without NULs holds whole lines in order (${broken.length} bad)`);
  t.equal(zeroed.length, 0, 'no snapshot shows NUL bytes', {
    todo: 'kernel page-cache race between auto_cache invalidation on open and a write in flight (FUSE without writeback cache)',
  });
  const final = await readFile(file, 'utf8');
  t.equal(problem(final, true), undefined, `the final file has all ${2 * LINES} lines, whole and in order`);
  t.equal((await stat(file)).size, Buffer.byteLength(final), 'stat size matches the content');

  await m.stop();
  const again = await m.remount();
  const remounted = await readFile(join(again.dir, 'busy', 'log.txt'), 'utf8');
  t.equal(remounted, final, 'the same after a remount');
  m = again;
});

/** A child that opens a file, says so, waits for a line on stdin, then reads it all through the fd. */
const HOLDER = `
import { openSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';
const fd = openSync(process.argv[2], 'r');
process.stdout.write('opened\\n');
// Each line on stdin: read the whole file through the descriptor. End of stdin: exit.
process.stdin.on('data', () => {
  const hash = createHash('sha256');
  const buf = Buffer.alloc(256 * 1024);
  let size = 0;
  for (;;) {
    const n = readSync(fd, buf, 0, buf.length, size);
    if (n === 0) break;
    hash.update(buf.subarray(0, n));
    size += n;
  }
  process.stdout.write(JSON.stringify({ size, sha256: hash.digest('hex') }) + '\\n');
});
process.stdin.on('end', () => process.exit(0));
`;

interface Holder {
  /** Reads the whole file through the descriptor opened at the start. */
  read(): Promise<{ size: number; sha256: string }>;
  /** Closes the descriptor (the child exits). */
  close(): Promise<void>;
}

async function holdOpen(t: Test, path: string): Promise<Holder> {
  const script = join(local, 'holder.mjs');
  if (!existsSync(script)) writeFileSync(script, HOLDER);
  const child = spawn(process.execPath, [script, path], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.value !== 'opened') throw new Error(`holder did not open ${path}: ${String(first.value)}`);
  return {
    async read() {
      child.stdin.write('go\n');
      const answer = await lines.next();
      return JSON.parse(String(answer.value)) as { size: number; sha256: string };
    },
    async close() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin.end();
      await exited;
    },
  };
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

for (const [what, size] of [
  ['multi-chunk', 3 * MiB + 11],
  ['inline', 1000],
] as const) {
  t.test(`an unlinked ${what} file stays readable through a descriptor opened before`, async (t) => {
    const data = randomBytes(size);
    const source = join(local, `unlinked-${what}`);
    writeFileSync(source, data);
    const file = join(m.dir, 'busy', `doomed-${what}.bin`);
    await ok(t, run('cp', [source, file]), 'cp');
    const holder = await holdOpen(t, file);
    await ok(t, run('rm', [file]), 'rm while open');
    t.notOk(existsSync(file), 'the name is gone');
    // A new file under the same name must not show through the old descriptor.
    writeFileSync(join(local, 'replacement'), randomBytes(4321));
    await ok(t, run('cp', [join(local, 'replacement'), file]), 'a new file under the same name');
    t.same(await holder.read(), { size, sha256: sha256(data) }, 'the open descriptor reads the unlinked content');
    await ok(t, run('cmp', [join(local, 'replacement'), file]), 'the name shows the new file');
    const hidden = () => readdirSync(join(m.dir, 'busy')).filter((name) => name.startsWith('.fuse_hidden'));
    t.same(hidden(), [], 'no trace of the unlinked file is listed while it is open', {
      todo:
        testFuse === 'libfuse' &&
        'libfuse (no hard_remove: fuse-native cannot serve a removed node) renames it to .fuse_hidden* until closed',
    });
    await holder.close();
    await ok(t, run('cmp', [join(local, 'replacement'), file]), 'and still does once the old one is closed');
    await sleep(200);
    t.same(hidden(), [], 'nothing is left behind once it is closed');
  });
}

t.test('a reader keeps its version while the CLI commits a new one', async (t) => {
  const v1 = randomBytes(2 * MiB + 3);
  const v2 = join(local, 'v2');
  writeFileSync(join(local, 'v1'), v1);
  writeFileSync(v2, randomBytes(MiB));
  const file = join(m.dir, 'busy', 'versioned.bin');
  await ok(t, run('cp', [join(local, 'v1'), file]), 'cp v1');
  const holder = await holdOpen(t, file);
  const put = await m.cli(['put', v2, 'busy/versioned.bin']);
  t.equal(put.code, 0, 'lilio put v2 while the file is open', { stderr: put.stderr });
  t.same(await holder.read(), { size: v1.length, sha256: sha256(v1) }, 'the open descriptor still reads v1');
  // The kernel keeps one inode per path: the holder's reads just refreshed its cached size to
  // v1's, and an open does not refetch attributes, so for up to attr_timeout (1 s) a new open may
  // be sized by v1. What this mount serves is checked once that window has passed.
  const soon = await run('cmp', [v2, file]);
  t.equal(soon.code, 0, 'an immediate new open reads exactly v2', {
    stderr: soon.stderr,
    todo: 'the kernel sizes it by attributes cached from the other descriptor until attr_timeout',
  });
  await sleep(1100);
  await ok(t, run('cmp', [v2, file]), 'a new open reads v2 (while the old descriptor is still open)');
  t.same(await holder.read(), { size: v1.length, sha256: sha256(v1) }, 'which still reads v1', {
    todo: 'one kernel inode per path (both front ends): the page cache the new open filled serves the old descriptor too',
  });
  await holder.close();
});
