/**
 * scripts/bench-engine: the original design's tables, ours beside theirs.
 *
 * Every row runs in a fresh child process so that its peak RSS is its own.
 * "Peak memory" is how far one upload and one download of an object of the
 * row's size raise the process's peak RSS over its baseline (engine loaded
 * and warmed up, source buffer allocated), minus the replica bytes that
 * memory backends hold by design: what the engine itself needs per object.
 *
 * Rows run the built engine (dist/, rebuilt first), as users run it: from
 * source, every codec and disk thread would load the TypeScript loader too.
 *
 *   node --import tsx scripts/bench-engine.ts [--quick]
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

type Engine = typeof import('../src/engine/lilio.js') & typeof import('../src/config/load.js');
/** The built engine; see the header for why. */
async function builtEngine(): Promise<Engine> {
  const dist = (path: string) => import(new URL(`../dist/${path}`, import.meta.url).href);
  return { ...(await dist('engine/lilio.js')), ...(await dist('config/load.js')) } as Engine;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const SELF = fileURLToPath(import.meta.url);

type BackendKind = 'memory' | 'local';
interface RowSpec {
  kind: 'size' | 'concurrent' | 'quorum';
  backend: BackendKind;
  size: number;
  iterations: number;
  w: number;
  r: number;
  concurrency: number;
  encrypt: boolean;
  /** Strict reads need R verified replicas, so R shows in the download figure. */
  strict?: boolean;
}
interface RowResult {
  upMs: number;
  upMBs: number;
  downMs: number;
  downMBs: number;
  memMB: number;
}

/** A parsed config as the engine takes it: home in `dir`, a throwaway master key. */
function benchConfig<P extends object>(parsed: P, dir: string) {
  return {
    ...parsed,
    home: dir,
    source: 'bench',
    masterKey: { kind: 'env' as const, base64: randomBytes(32).toString('base64') },
  };
}

async function runRow(spec: RowSpec): Promise<RowResult> {
  const { Lilio, parseConfig } = await builtEngine();
  const dir = mkdtempSync(join(tmpdir(), 'lilio-bench-'));
  try {
    const storages = [1, 2, 3].map((i) =>
      spec.backend === 'memory'
        ? { name: `m${i}`, type: 'memory' as const }
        : { name: `l${i}`, type: 'local' as const, path: join(dir, `d${i}`) },
    );
    const parsed = parseConfig({
      metadata: { type: 'memory' },
      storages,
      quorum: { n: 3, w: spec.w, r: spec.r, readMode: spec.strict ? 'strict' : 'first' },
    });
    const lilio = await Lilio.open(benchConfig(parsed, dir));
    await lilio.createBucket('bench', { encrypt: spec.encrypt });
    const piece = randomBytes(Math.min(spec.size, MiB));
    async function* source(size: number) {
      for (let done = 0; done < size; done += piece.length)
        yield piece.subarray(0, Math.min(piece.length, size - done));
    }
    // Warm up the code paths so JIT and pools are not billed to the first row.
    await lilio.putObject('bench', 'warm', source(Math.min(spec.size, MiB)));
    for await (const _ of lilio.getObject('bench', 'warm'));
    await lilio.chunks.drain();

    // Memory first, while the high-water mark is still the baseline's: what one upload and one
    // download of this size need on top of it, as the original's "memory usage" column meant.
    const baseline = peakRss();
    await lilio.putObject('bench', 'memory', source(spec.size));
    for await (const _ of lilio.getObject('bench', 'memory'));
    await lilio.chunks.drain();
    // Memory backends hold one copy of each chunk, shared by its three replicas.
    const heldByMemoryBackends = spec.backend === 'memory' ? spec.size : 0;
    const memBytes = Math.max(0, peakRss() - baseline - heldByMemoryBackends);

    const keys = Array.from({ length: spec.iterations }, (_, i) => `obj-${i}`);
    const upStart = performance.now();
    if (spec.concurrency > 1) {
      for (let i = 0; i < keys.length; i += spec.concurrency) {
        await Promise.all(
          keys.slice(i, i + spec.concurrency).map((k) => lilio.putObject('bench', k, source(spec.size))),
        );
      }
    } else {
      for (const key of keys) await lilio.putObject('bench', key, source(spec.size));
    }
    const upMs = performance.now() - upStart;
    await lilio.chunks.drain();

    const downStart = performance.now();
    for (const key of keys) for await (const _ of lilio.getObject('bench', key));
    const downMs = performance.now() - downStart;

    await lilio.close();
    const bytes = spec.size * spec.iterations;
    return {
      upMs: upMs / spec.iterations,
      upMBs: bytes / 1e6 / (upMs / 1000),
      downMs: downMs / spec.iterations,
      downMBs: bytes / 1e6 / (downMs / 1000),
      memMB: memBytes / 1e6,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * This process's own RSS high-water mark (VmHWM). getrusage's maxRSS would do,
 * but Linux carries it over from the parent across exec.
 */
function peakRss(): number {
  return Number(/^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
}

function inChild(spec: RowSpec): RowResult {
  const out = execFileSync(process.execPath, ['--import', 'tsx', SELF, '--row', JSON.stringify(spec)], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  return JSON.parse(out.trim().split('\n').pop()!);
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(rows[0]!), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

const fmt = (n: number, digits = 2) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function labelOf(size: number): string {
  return size >= MiB ? `${size / MiB} MiB` : `${size / KiB} KiB`;
}

interface HousekeepingResult {
  createsAlone: number;
  createsWithSessions: number;
  otherSessions: number;
  sparseMs: number;
  sparseRecordBytes: number;
  gcChunks: number;
  gcSeconds: number;
}

/**
 * The data-lifetime rows, on memory backends and the embedded SQLite store (the
 * metadata cost is what they measure): a 1 TiB sparse file made through the
 * filesystem layer, and gc of many orphan chunks.
 */
async function runHousekeeping(gcChunks: number): Promise<HousekeepingResult> {
  const { Lilio, parseConfig } = await builtEngine();
  const { Vfs, vfsOptions } = (await import(
    new URL('../dist/fs/vfs.js', import.meta.url).href
  )) as typeof import('../src/fs/vfs.js');
  const dir = mkdtempSync(join(tmpdir(), 'lilio-bench-'));
  try {
    const storages = [1, 2, 3].map((i) => ({ name: `m${i}`, type: 'memory' as const }));
    const parsed = parseConfig({
      metadata: { type: 'local', path: join(dir, 'meta') },
      storages,
      quorum: { n: 3, w: 2, r: 2 },
    });
    const lilio = await Lilio.open(benchConfig(parsed, dir));
    await lilio.createBucket('bench');
    const vfs = new Vfs(lilio, vfsOptions(lilio, false));
    const started = performance.now();
    const fd = await vfs.create('/bench/sparse.img', 0o644);
    await vfs.ftruncate(fd, 2 ** 40);
    await vfs.release(fd);
    const sparseMs = performance.now() - started;
    const record = await lilio.meta.getObject('bench', 'sparse.img');
    // Small-file creates through the filesystem layer, alone and with other processes' sessions
    // live on the same store, each holding a version open (read holds) and renewing its lease.
    const creates = async (tag: string, count: number) => {
      const begun = performance.now();
      for (let i = 0; i < count; i++) {
        const file = await vfs.create(`/bench/${tag}-${i}`, 0o644);
        await vfs.write(file, piece4k, piece4k.length, 0);
        await vfs.release(file);
      }
      return count / ((performance.now() - begun) / 1000);
    };
    const piece4k = randomBytes(4096);
    const createsAlone = await creates('alone', 1000);
    const held = await vfs.create('/bench/held', 0o644);
    await vfs.write(held, randomBytes(MiB), MiB, 0);
    await vfs.release(held);
    const others = [];
    for (let i = 0; i < 8; i++) {
      const other = await Lilio.open({ ...lilio.config, sessions: { ttlSeconds: 3 } }, { role: `bench-other-${i}` });
      const reader = await other.openObject('bench', 'held');
      others.push({ other, hold: await other.holdVersion(reader.record) });
    }
    const createsWithSessions = await creates('shared', 1000);
    for (const { other, hold } of others) {
      hold.release();
      await other.close();
    }
    // Orphans as a writer leaves them: another process seals chunks and ends without committing
    // (its session's close queues what it held as garbage).
    const writer = await Lilio.open(lilio.config, { role: 'bench-writer' });
    const ctx = await writer.bucket('bench');
    const piece = randomBytes(1024);
    for (let i = 0; i < gcChunks; i += 64) {
      await Promise.all(
        Array.from({ length: Math.min(64, gcChunks - i) }, async () => (await writer.chunks.seal(ctx, piece)).ref),
      );
    }
    await writer.close();
    const gcStarted = performance.now();
    const { deleted } = await lilio.collectGarbage({ graceMs: 0 });
    const gcSeconds = (performance.now() - gcStarted) / 1000;
    await lilio.close();
    return {
      createsAlone,
      createsWithSessions,
      otherSessions: others.length,
      sparseMs,
      sparseRecordBytes: JSON.stringify(record).length,
      gcChunks: deleted,
      gcSeconds,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const rowArg = process.argv.indexOf('--row');
  if (rowArg > 0) {
    const result = await runRow(JSON.parse(process.argv[rowArg + 1]!));
    console.log(JSON.stringify(result));
    return;
  }
  const housekeepingArg = process.argv.indexOf('--housekeeping');
  if (housekeepingArg > 0) {
    console.log(JSON.stringify(await runHousekeeping(Number(process.argv[housekeepingArg + 1]))));
    return;
  }
  const quick = process.argv.includes('--quick');
  execFileSync('npm', ['run', 'build', '--silent'], {
    stdio: 'inherit',
    cwd: fileURLToPath(new URL('..', import.meta.url)),
  });
  const original: Record<number, { up: string; upT: string; mem: string; down: string; downT: string }> = {
    [KiB]: { up: '0.32 ms', upT: '3.16 MB/s', mem: '1.0 MB', down: '0.14 ms', downT: '7.41 MB/s' },
    [100 * KiB]: { up: '0.70 ms', upT: '145.83 MB/s', mem: '1.1 MB', down: '0.47 ms', downT: '217.79 MB/s' },
    [MiB]: { up: '2.63 ms', upT: '398.04 MB/s', mem: '2.1 MB', down: '2.66 ms', downT: '394.74 MB/s' },
    [10 * MiB]: { up: '25 ms', upT: '419.35 MB/s', mem: '11.6 MB', down: '-', downT: '-' },
    [100 * MiB]: { up: '270 ms', upT: '387.68 MB/s', mem: '106.1 MB', down: '485 ms', downT: '216.15 MB/s' },
  };
  const sizes = [KiB, 100 * KiB, MiB, 10 * MiB, 100 * MiB];
  const iterationsFor = (size: number) => (quick ? 3 : Math.max(3, Math.min(2000, Math.floor((200 * MiB) / size))));
  const base = { w: 2, r: 2, concurrency: 1, encrypt: false };

  for (const backend of ['memory', 'local'] as const) {
    console.log(
      `\n## Upload and download, N=3 W=2 R=2, ${backend} backends (ours) vs the original (M1, memory backends)\n`,
    );
    const rows = [
      [
        'Size',
        'Upload latency',
        'Upload MB/s',
        'Download latency',
        'Download MB/s',
        'Peak memory',
        'Original upload',
        'Original MB/s',
        'Original memory',
        'Original download',
      ],
    ];
    for (const size of sizes) {
      const r = inChild({ kind: 'size', backend, size, iterations: iterationsFor(size), ...base });
      const o = original[size]!;
      rows.push([
        labelOf(size),
        `${fmt(r.upMs, 3)} ms`,
        fmt(r.upMBs),
        `${fmt(r.downMs, 3)} ms`,
        fmt(r.downMBs),
        `${fmt(r.memMB, 1)} MB`,
        o.up,
        o.upT,
        o.mem,
        `${o.down} / ${o.downT}`,
      ]);
    }
    console.log(table(rows));

    console.log(`\n## 1 MiB uploads: sequential vs 10 concurrent (${backend} backends)\n`);
    const n = quick ? 20 : 200;
    const seq = inChild({ kind: 'concurrent', backend, size: MiB, iterations: n, ...base });
    const par = inChild({ kind: 'concurrent', backend, size: MiB, iterations: n, ...base, concurrency: 10 });
    console.log(
      table([
        ['Test', 'Sequential', '10 concurrent', 'Scaling', 'Original (seq / 10 conc.)'],
        [
          '1 MiB uploads',
          `${fmt(seq.upMBs)} MB/s`,
          `${fmt(par.upMBs)} MB/s`,
          `${fmt(par.upMBs / seq.upMBs)}x`,
          '398 / 1,014 MB/s (2.5x)',
        ],
      ]),
    );

    console.log(`\n## Quorum impact, 1 MiB objects, strict reads (${backend} backends)\n`);
    const q22 = inChild({ kind: 'quorum', backend, size: MiB, iterations: n, ...base, strict: true });
    const q33 = inChild({ kind: 'quorum', backend, size: MiB, iterations: n, ...base, w: 3, r: 3, strict: true });
    console.log(
      table([
        ['Config', 'Upload MB/s', 'Download MB/s', 'Original'],
        ['N=3 W=1 R=1', 'refused (W + R must be > N)', '-', 'refused'],
        ['N=3 W=2 R=2', fmt(q22.upMBs), fmt(q22.downMBs), '185.82 MB/s'],
        ['N=3 W=3 R=3', fmt(q33.upMBs), fmt(q33.downMBs), '264.95 MB/s'],
      ]),
    );
  }

  console.log('\n## Data lifetime: sparse files and garbage collection (memory backends, embedded SQLite)\n');
  const gcChunks = quick ? 10_000 : 100_000;
  const hk = JSON.parse(
    execFileSync(process.execPath, ['--import', 'tsx', SELF, '--housekeeping', String(gcChunks)], {
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    })
      .trim()
      .split('\n')
      .pop()!,
  ) as HousekeepingResult;
  console.log(
    table([
      ['Test', 'Result'],
      [
        'create a 1 TiB sparse file (create, truncate, close)',
        `${fmt(hk.sparseMs, 1)} ms, record ${hk.sparseRecordBytes} B`,
      ],
      ['small-file creates (4 KiB, create+write+close), this session alone', `${fmt(hk.createsAlone, 0)} files/s`],
      [
        `the same with ${hk.otherSessions} other sessions live, each holding a version`,
        `${fmt(hk.createsWithSessions, 0)} files/s`,
      ],
      [
        `gc of ${hk.gcChunks.toLocaleString('en-US')} orphan chunks (3 replicas each)`,
        `${fmt(hk.gcSeconds, 1)} s (${fmt(hk.gcChunks / hk.gcSeconds, 0)} chunks/s)`,
      ],
    ]),
  );

  console.log('\n## Encryption cost, 10 MiB objects, memory backends\n');
  const plain = inChild({ kind: 'size', backend: 'memory', size: 10 * MiB, iterations: quick ? 3 : 20, ...base });
  const enc = inChild({
    kind: 'size',
    backend: 'memory',
    size: 10 * MiB,
    iterations: quick ? 3 : 20,
    ...base,
    encrypt: true,
  });
  console.log(
    table([
      ['Bucket', 'Upload MB/s', 'Download MB/s'],
      ['plain', fmt(plain.upMBs), fmt(plain.downMBs)],
      ['AES-256-GCM', fmt(enc.upMBs), fmt(enc.downMBs)],
    ]),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
