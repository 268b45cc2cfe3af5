import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { ObjectRecord } from '../../src/core/types.js';
import { LocalMetadataStore } from '../../src/meta/local.js';
import { runCli } from '../fixtures/cli.js';

// scrub, gc's orphan pass and rebalance through bin/lilio on local backends.

const home = mkdtempSync(join(tmpdir(), 'lilio-cli-admin-'));
t.teardown(() => rmSync(home, { recursive: true, force: true }));
const env = { LILIO_HOME: home, LILIO_CONFIG: '', LILIO_MASTER_KEY: '' };
const lilio = (args: string[], input?: Buffer) => runCli(args, env, input);
const data = randomBytes(3 * 1024 * 1024 + 5);

function chunkPath(disk: number, id: string): string {
  return join(home, 'data', String(disk), id.slice(0, 2), id.slice(2, 4), id);
}

/** The object's record, read in this process from the store the CLI uses (SQLite is shared safely). */
async function stat(): Promise<ObjectRecord> {
  const meta = LocalMetadataStore.open({ path: join(home, 'meta'), synchronous: 'normal' });
  try {
    return (await meta.getObject('files', 'data.bin'))!;
  } finally {
    await meta.close();
  }
}

t.before(async () => {
  await lilio(['bucket', 'create', 'files', '--encrypt']);
  const put = await lilio(['put', '-', 'files/data.bin'], data);
  if (put.code !== 0) throw new Error(put.stderr);
});

t.test('scrub: clean, then a missing replica fails it, --repair fixes it', async (t) => {
  const clean = await lilio(['scrub']);
  t.equal(clean.code, 0, clean.stderr);
  t.match(clean.stdout.toString(), /4 chunk\(s\), 12 replica\(s\)/);
  t.match(clean.stdout.toString(), /^clean/m);

  const record = await stat();
  unlinkSync(chunkPath(Number(record.chunks[2]!.replicas[0]!.slice(-1)), record.chunks[2]!.id));
  const found = await lilio(['scrub', 'files', '--json']);
  t.equal(found.code, 1, 'problems left: exit 1');
  t.match(found.stderr, /1 chunk\(s\) under-replicated, 0 lost \(lilio scrub --repair rewrites missing/);
  t.match(JSON.parse(found.stdout.toString()), { problems: { missing: 1 }, underReplicated: 1 });
  const repaired = await lilio(['scrub', '--repair']);
  t.equal(repaired.code, 0, repaired.stderr);
  t.match(repaired.stdout.toString(), /repaired 1 replica\(s\)/);
  t.match(repaired.stdout.toString(), /under-replicated: 0 chunk\(s\)/, 'and nothing is left under-replicated');
});

t.test('gc: an orphan older than the grace period goes, a young one stays', async (t) => {
  const old = 'ab'.repeat(16);
  const young = 'cd'.repeat(16);
  for (const id of [old, young]) {
    mkdirSync(join(chunkPath(2, id), '..'), { recursive: true });
    writeFileSync(chunkPath(2, id), 'left by a writer that crashed');
  }
  const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000);
  utimesSync(chunkPath(2, old), twoHoursAgo, twoHoursAgo);
  const dry = await lilio(['gc', '--grace', '3600', '--dry-run']);
  t.match(dry.stdout.toString(), /orphans: would delete 1 unreferenced chunk/);
  t.ok(existsSync(chunkPath(2, old)), 'a dry run deletes nothing');
  const gc = await lilio(['gc', '--grace', '3600']);
  t.equal(gc.code, 0, gc.stderr);
  t.match(gc.stdout.toString(), /deleted 0 chunk\(s\); 0 to retry/);
  t.match(gc.stdout.toString(), /orphans: deleted 1 unreferenced chunk\(s\) and 0 stray replica\(s\)/);
  t.notOk(existsSync(chunkPath(2, old)), 'the old orphan is gone');
  t.ok(existsSync(chunkPath(2, young)), 'the young one (an upload in flight?) stays');
  unlinkSync(chunkPath(2, young));
});

t.test('gc: temporary files of interrupted writes older than the grace period go, young ones stay', async (t) => {
  const id = 'ef'.repeat(16);
  const dir = join(chunkPath(1, id), '..');
  mkdirSync(dir, { recursive: true });
  const old = join(dir, `.${id}.0123456789ab.tmp`);
  const young = join(dir, `.${id}.ba9876543210.tmp`);
  for (const file of [old, young]) writeFileSync(file, 'half a chunk, its writer killed');
  const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000);
  utimesSync(old, twoHoursAgo, twoHoursAgo);
  const dry = await lilio(['gc', '--grace', '3600', '--dry-run']);
  t.equal(dry.code, 0, dry.stderr);
  t.ok(existsSync(old), 'a dry run leaves temporary files alone');
  const gc = await lilio(['gc', '--grace', '3600', '--json']);
  t.equal(gc.code, 0, gc.stderr);
  t.same(JSON.parse(gc.stdout.toString()).temporaryFiles, { removed: 1, skipped: [] }, 'counted in the JSON report');
  t.same(JSON.parse(gc.stdout.toString()).repairs, { repaired: 0, waiting: 0 }, 'no recorded repairs to finish');
  t.notOk(existsSync(old), 'the old temporary file is gone');
  t.ok(existsSync(young), 'the young one (a write in progress?) stays');
  const text = await lilio(['gc', '--grace', '0']);
  t.match(text.stdout.toString(), /temporary files: removed 1 left by interrupted writes/);
  t.notOk(existsSync(young));
});

t.test('rebalance onto a fourth backend: dry run, move, gc of the old replicas, data intact', async (t) => {
  const config = join(home, 'four.json');
  writeFileSync(
    config,
    JSON.stringify({
      metadata: { type: 'local', path: join(home, 'meta') },
      storages: [1, 2, 3, 4].map((i) => ({ name: `local-${i}`, type: 'local', path: join(home, 'data', String(i)) })),
      quorum: { n: 3, w: 2, r: 2 },
    }),
  );
  const four = (args: string[]) => lilio([...args, '--config', config]);
  const dry = await four(['rebalance', '--dry-run', '--json']);
  t.equal(dry.code, 0, dry.stderr);
  const plan = JSON.parse(dry.stdout.toString());
  t.match(plan, { dryRun: true, chunks: 4, objectsUpdated: 0 });
  const moved = await four(['rebalance']);
  t.equal(moved.code, 0, moved.stderr);
  t.match(moved.stdout.toString(), new RegExp(`moved ${plan.moved} of 4 chunk\\(s\\)`));
  const record = await stat();
  t.equal(record.chunks.filter((c) => c.replicas.includes('local-4')).length, plan.moved, 'moved onto local-4');
  t.equal((await four(['gc', '--grace', '0'])).code, 0);
  for (const chunk of record.chunks) {
    for (const disk of [1, 2, 3, 4]) {
      t.equal(existsSync(chunkPath(disk, chunk.id)), chunk.replicas.includes(`local-${disk}`), `disk ${disk}`);
    }
  }
  const back = await four(['get', 'files/data.bin', '-']);
  t.ok(back.stdout.equals(data), 'the object reads back');
});
