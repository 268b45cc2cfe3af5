import { spawn } from 'node:child_process';
import { mkdir, readdir } from 'node:fs/promises';
import { createInterface } from 'node:readline';

/**
 * The metadata half of scripts/bench-mount: what a filesystem on a metadata
 * store costs per file, measured through the mount with several client
 * processes at once (one process per client, each calling the fs
 * synchronously, as tools do):
 *   creates   C clients create N files of 1 KiB in one directory (each one a commit)
 *   ls -l     of that directory of N entries, with the kernel's and the mount's attribute caches expired
 *   stats     C clients stat the N files once each, caches expired
 */

export interface MetaOptions {
  files: number;
  clients: number;
  timeoutMs: number;
}

export interface MetaResult {
  createsPerS?: number;
  lsS?: number;
  statsPerS?: number;
  errors: string[];
}

export interface MetaTools {
  /** Runs a command to completion (StepError on failure); returns its wall time. */
  run(cmd: string, args: string[], opts: { timeoutMs?: number; discardStdout?: boolean }): Promise<{ seconds: number }>;
  dropCaches(): Promise<void>;
  log(text: string): void;
}

/**
 * Longest the mount answers a stat from what a listing carried (src/fs/vfs.ts
 * LISTED_ATTRS_MS; the kernel's own attribute cache is 1 s): waited out before
 * each cold step, so stats reach the metadata store.
 */
const ATTR_CACHE_MS = 5_000;

const WORKER = `
const fs = require('fs');
const { op, dir, from, to } = process.env;
const data = Buffer.alloc(1024, 7);
process.stdout.write('ready\\n');
process.stdin.once('data', () => {
  const started = process.hrtime.bigint();
  let errors = 0;
  let first = '';
  for (let i = Number(from); i < Number(to); i++) {
    const path = dir + '/f' + String(i).padStart(6, '0');
    try {
      if (op === 'create') fs.writeFileSync(path, data);
      else fs.statSync(path);
    } catch (err) {
      errors++;
      first ||= err.code || String(err);
    }
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  process.stdout.write(JSON.stringify({ seconds, errors, first }) + '\\n');
  process.exit(0);
});
`;

/** C workers over [0, files): all start together; returns the wall time from the start to the last one done. */
async function parallel(op: 'create' | 'stat', dir: string, options: MetaOptions): Promise<number> {
  const per = Math.ceil(options.files / options.clients);
  const workers = Array.from({ length: options.clients }, (_, c) => {
    const from = c * per;
    const to = Math.min(options.files, from + per);
    const child = spawn(process.execPath, ['-e', WORKER], {
      env: { ...process.env, op, dir, from: String(from), to: String(to) },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    return { child, lines };
  });
  const kill = setTimeout(() => {
    for (const w of workers) w.child.kill('SIGKILL');
  }, options.timeoutMs);
  try {
    for (const w of workers)
      if ((await w.lines.next()).value !== 'ready') throw new Error(`${op} worker did not start`);
    const started = process.hrtime.bigint();
    for (const w of workers) w.child.stdin!.end('go\n');
    const reports = await Promise.all(
      workers.map(async (w) => {
        const { value, done } = await w.lines.next();
        if (done) throw new Error(`${op} worker ended without a report (timed out?)`);
        return JSON.parse(value) as { seconds: number; errors: number; first: string };
      }),
    );
    const wall = Number(process.hrtime.bigint() - started) / 1e9;
    const errors = reports.reduce((n, r) => n + r.errors, 0);
    if (errors > 0) throw new Error(`${errors} ${op} calls failed (first: ${reports.find((r) => r.first)?.first})`);
    return wall;
  } finally {
    clearTimeout(kill);
  }
}

/** Runs the three measures in `work` (a directory inside a mounted bucket). */
export async function measureMetadata(work: string, options: MetaOptions, tools: MetaTools): Promise<MetaResult> {
  const result: MetaResult = { errors: [] };
  const dir = `${work}/many`;
  await mkdir(dir, { recursive: true });
  const wait = () => new Promise((resolve) => setTimeout(resolve, ATTR_CACHE_MS + 200));
  try {
    tools.log(`creates: ${options.files} files, ${options.clients} clients`);
    result.createsPerS = options.files / (await parallel('create', dir, options));
  } catch (err) {
    result.errors.push(`creates: ${(err as Error).message}`);
    return result;
  }
  try {
    await tools.dropCaches().catch(() => undefined);
    await wait();
    tools.log(`ls -l of ${options.files} entries`);
    result.lsS = (await tools.run('ls', ['-l', dir], { timeoutMs: options.timeoutMs, discardStdout: true })).seconds;
    const seen = (await readdir(dir)).length;
    if (seen !== options.files) throw new Error(`listed ${seen} entries, expected ${options.files}`);
  } catch (err) {
    result.errors.push(`ls -l: ${(err as Error).message}`);
  }
  try {
    await tools.dropCaches().catch(() => undefined);
    await wait();
    tools.log(`stats: ${options.clients} clients`);
    result.statsPerS = options.files / (await parallel('stat', dir, options));
  } catch (err) {
    result.errors.push(`stats: ${(err as Error).message}`);
  }
  return result;
}

export function metadataTable(
  columns: { label: string; result: MetaResult | undefined; unavailable?: string }[],
  options: MetaOptions,
): string {
  const cell = (r: MetaResult | undefined, value: number | undefined, digits: number) =>
    r === undefined ? 'not run' : value === undefined ? 'n/a' : value.toFixed(digits);
  const rows: [string, (r: MetaResult | undefined) => string][] = [
    [`creates/s, ${options.clients} clients, 1 KiB files, one directory`, (r) => cell(r, r?.createsPerS, 0)],
    [`ls -l of ${options.files} entries, cold (s)`, (r) => cell(r, r?.lsS, 2)],
    [`stats/s, ${options.clients} clients, cold`, (r) => cell(r, r?.statsPerS, 0)],
  ];
  const head = ['measure', ...columns.map((c) => c.label)];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const [label, value] of rows) {
    lines.push(`| ${[label, ...columns.map((c) => (c.unavailable ? 'n/a' : value(c.result)))].join(' | ')} |`);
  }
  return lines.join('\n');
}
