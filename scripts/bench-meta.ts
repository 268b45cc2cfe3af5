/**
 * The local (SQLite) metadata store's hot paths: commits, point reads, one
 * directory listing, generation(), and a 100 GiB object's 100k-chunk record.
 *
 *   node --import tsx scripts/bench-meta.ts [--quick]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChunkRef, ObjectDraft } from '../src/core/types.js';
import { LocalMetadataStore } from '../src/meta/local.js';

const quick = process.argv.includes('--quick');
const scale = quick ? 0.1 : 1;
const BUCKET = 'bench';

function chunk(): ChunkRef {
  return {
    id: randomBytes(16).toString('hex'),
    size: 1 << 20,
    storedSize: (1 << 20) + 28,
    checksum: randomBytes(32).toString('hex'),
    replicas: ['disk-a', 'disk-b', 'disk-c'],
  };
}

function draft(key: string, chunks: ChunkRef[] = [chunk()]): ObjectDraft {
  const now = Date.now();
  return {
    bucket: BUCKET,
    key,
    kind: 'file',
    versionId: randomBytes(16).toString('hex'),
    size: chunks.length << 20,
    chunkSize: 1 << 20,
    chunks,
    attrs: { mode: 0o644, uid: 1000, gid: 1000, mtimeMs: now, atimeMs: now, ctimeMs: now },
    committedAt: now,
  };
}

async function timed(run: () => Promise<void> | void): Promise<number> {
  const started = performance.now();
  await run();
  return performance.now() - started;
}

function open(dir: string, synchronous: 'normal' | 'full'): LocalMetadataStore {
  return LocalMetadataStore.open({ path: join(dir, synchronous), synchronous });
}

const rows: [string, string][] = [];
const dir = mkdtempSync(join(tmpdir(), 'lilio-bench-meta-'));
try {
  for (const synchronous of ['normal', 'full'] as const) {
    const store = open(dir, synchronous);
    await store.createBucket({
      name: BUCKET,
      createdAt: Date.now(),
      encrypted: false,
      chunkSize: 1 << 20,
      attrs: { mode: 0o755, uid: 0, gid: 0, mtimeMs: 0, atimeMs: 0, ctimeMs: 0 },
    });
    const n = Math.round((synchronous === 'normal' ? 20_000 : 2_000) * scale);
    const drafts = Array.from({ length: n }, (_, i) => draft(`photos/2024/img${i}.jpg`));
    const create = await timed(async () => {
      for (const d of drafts) await store.putObject(d, 'absent');
    });
    rows.push([
      `putObject, new key, 1 chunk (synchronous=${synchronous})`,
      `${Math.round(n / (create / 1000))} commits/s`,
    ]);
    if (synchronous === 'full') {
      await store.close();
      continue;
    }

    const replacements = drafts.map((d) => draft(d.key));
    const replace = await timed(async () => {
      for (const d of replacements) await store.putObject(d, 'any');
    });
    rows.push([`putObject, replace (old chunk queued)`, `${Math.round(n / (replace / 1000))} commits/s`]);

    const reads = Math.round(200_000 * scale);
    const keys = drafts.map((d) => d.key);
    const read = await timed(async () => {
      for (let i = 0; i < reads; i++) await store.getObject(BUCKET, keys[(i * 7919) % keys.length]!);
    });
    rows.push(['getObject', `${Math.round(reads / (read / 1000))} reads/s`]);

    for (let i = 0; i < 900; i++) await store.putObject(draft(`dir1000/file${i}`), 'absent');
    for (let i = 0; i < 100; i++) await store.putObject(draft(`dir1000/sub${i}/inner`), 'absent');
    const listings = Math.round(500 * scale);
    let entries = 0;
    const list = await timed(async () => {
      for (let i = 0; i < listings; i++) {
        const page = await store.list(BUCKET, { prefix: 'dir1000/', delimiter: '/' });
        entries = page.objects.length + page.prefixes.length;
      }
    });
    rows.push([
      `list one directory of ${entries} entries (900 files + 100 dirs)`,
      `${(list / listings).toFixed(3)} ms`,
    ]);
    const top = await timed(async () => {
      for (let i = 0; i < listings; i++) await store.list(BUCKET, { delimiter: '/', limit: 10 });
    });
    rows.push([`list the top level (bucket of ${n + 1000} keys)`, `${((top / listings) * 1000).toFixed(1)} µs`]);

    const calls = Math.round(1_000_000 * scale);
    let sink = 0;
    const gen = await timed(() => {
      for (let i = 0; i < calls; i++) sink += store.generation();
    });
    rows.push(['generation()', `${((gen / calls) * 1000).toFixed(2)} µs${sink < 0 ? '!' : ''}`]);

    const big = draft('huge/100GiB.iso', Array.from({ length: Math.round(100_000 * scale) }, chunk));
    const bigPut = await timed(async () => {
      await store.putObject(big, 'absent');
    });
    const bigGet = await timed(async () => {
      await store.getObject(BUCKET, big.key);
    });
    const bigList = await timed(async () => {
      for (let i = 0; i < 100; i++) await store.list(BUCKET, { prefix: 'huge/', delimiter: '/' });
    });
    const label = `${big.chunks.length} chunks`;
    rows.push([
      `putObject, ${label} (${(JSON.stringify(big.chunks).length / 1e6).toFixed(1)} MB JSON)`,
      `${bigPut.toFixed(1)} ms`,
    ]);
    rows.push([`getObject, ${label}`, `${bigGet.toFixed(1)} ms`]);
    rows.push([`list its directory (summary only)`, `${((bigList / 100) * 1000).toFixed(1)} µs`]);
    const replaceBig = await timed(async () => {
      await store.putObject(draft(big.key, [...big.chunks.slice(1), chunk()]), 'any');
    });
    rows.push([`replace it, 1 chunk changed (1 queued as garbage)`, `${replaceBig.toFixed(1)} ms`]);
    await store.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const width = Math.max(...rows.map(([what]) => what.length));
console.log(`local metadata store (SQLite, WAL)${quick ? ' --quick' : ''}`);
for (const [what, value] of rows) console.log(`  ${what.padEnd(width)}  ${value.padStart(16)}`);
