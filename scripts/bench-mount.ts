/**
 * scripts/bench-mount: the mount measured with the tools people use on it.
 *
 * One run, one machine, one filesystem mounted at a time:
 *   ceiling            scripts/bench/memfs.ts, a minimal in-memory fuse-native FS
 *   lilio              `lilio mount`, embedded default (3 local backends + SQLite)
 *   lilio-libfuse      the same with `--fuse libfuse` (fuse-native over libfuse 2, until it is removed)
 *   lilio (encrypted)  the same, in a bucket created with --encrypt
 *   rclone             Debian's rclone, local backend, --vfs-cache-mode writes
 *   lilio (etcd)       `lilio mount` with its metadata on a local etcd (only with --fs lilio-etcd)
 * and for each: dd write of a big file (closed and fsynced), dd read of it with
 * the page cache dropped, cp -r / ls -lR / rm -rf of a tree of small files, and
 * the mount process's peak RSS (VmHWM). With --meta (implied by lilio-etcd), a
 * second table for lilio and lilio (etcd): small-file creates/s and stats/s from
 * several client processes, and ls -l of a directory of 10,000 entries
 * (scripts/bench/metadata.ts).
 *
 *   scripts/bench-mount [--size-mib 1024] [--files 2000] [--json FILE]
 *                       [--fs ceiling,lilio,lilio-enc,rclone,lilio-etcd] [--no-build] [--step-timeout 240]
 *                       [--meta] [--meta-files 10000] [--meta-clients 4]
 *
 * Every backing directory lives under one temp dir in $TMPDIR (default /tmp),
 * on one disk. Every mount is torn down in a finally, on errors and on Ctrl-C:
 * SIGTERM to the process we started, then fusermount -u, then -uz, then SIGKILL.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type BenchEtcd, startBenchEtcd } from './bench/etcd-server.js';
import { type MetaResult, measureMetadata, metadataTable } from './bench/metadata.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const LILIO_BIN = join(REPO, 'bin', 'lilio');
const MEMFS = join(REPO, 'scripts', 'bench', 'memfs.ts');
const FUSE_MEMFS = join(REPO, 'scripts', 'bench', 'fuse-memfs.ts');
const MOUNT_WAIT_MS = 15_000;
/** The file fio writes at random, in MiB (the data-lifetime issue's goal is stated for 64 MiB). */
const RANDWRITE_MIB = 64;
const FS_IDS = ['ceiling', 'ceiling-fuse', 'lilio', 'lilio-libfuse', 'lilio-enc', 'rclone', 'lilio-etcd'] as const;
type FsId = (typeof FS_IDS)[number];
const DEFAULT_FS: FsId[] = ['ceiling', 'ceiling-fuse', 'lilio', 'lilio-enc', 'rclone'];
const LABELS: Record<FsId, string> = {
  ceiling: 'ceiling',
  'ceiling-fuse': 'ceiling (src/fuse)',
  lilio: 'lilio',
  'lilio-libfuse': 'lilio --fuse libfuse',
  'lilio-enc': 'lilio (encrypted)',
  rclone: 'rclone',
  'lilio-etcd': 'lilio (etcd)',
};

// ---------------------------------------------------------------- arguments

interface Options {
  sizeMib: number;
  files: number;
  json: string | undefined;
  fs: FsId[];
  build: boolean;
  stepTimeoutMs: number;
  pretouch: boolean;
  meta: boolean;
  metaFiles: number;
  metaClients: number;
}

function usage(): string {
  return [
    'usage: scripts/bench-mount [options]',
    '  --size-mib N        size of the sequential file (default 1024)',
    '  --files N           files of 4 KiB in the tree (default 2000)',
    '  --json FILE         also write the raw numbers to FILE',
    `  --fs LIST           filesystems to run, comma-separated, of ${FS_IDS.join(',')} (default ${DEFAULT_FS.join(',')})`,
    '  --no-build          do not run `npm run build` first (needs dist/cli/main.js)',
    '  --step-timeout S    give up on one step after S seconds (default 240)',
    '  --no-pretouch       do not fault memory in before the write and read steps (see pretouch())',
    '  --meta              also the metadata table for lilio and lilio-etcd (on with lilio-etcd)',
    '  --meta-files N      files created, listed and stat-ed there (default 10000)',
    '  --meta-clients N    client processes creating and stat-ing at once (default 4)',
  ].join('\n');
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      'size-mib': { type: 'string', default: '1024' },
      files: { type: 'string', default: '2000' },
      json: { type: 'string' },
      fs: { type: 'string', default: DEFAULT_FS.join(',') },
      'no-build': { type: 'boolean', default: false },
      'step-timeout': { type: 'string', default: '240' },
      'no-pretouch': { type: 'boolean', default: false },
      meta: { type: 'boolean', default: false },
      'meta-files': { type: 'string', default: '10000' },
      'meta-clients': { type: 'string', default: '4' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${usage()}\n`);
    process.exit(0);
  }
  const int = (name: string, text: string | undefined, min: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} wants an integer >= ${min}, got ${text}`);
    return n;
  };
  const fs = (values.fs ?? '').split(',').filter(Boolean);
  for (const id of fs) {
    if (!(FS_IDS as readonly string[]).includes(id)) throw new Error(`--fs: unknown filesystem ${id} (${FS_IDS})`);
  }
  return {
    sizeMib: int('size-mib', values['size-mib'], 1),
    files: int('files', values.files, 1),
    json: values.json,
    fs: FS_IDS.filter((id) => fs.includes(id)),
    build: !values['no-build'],
    stepTimeoutMs: int('step-timeout', values['step-timeout'], 1) * 1000,
    pretouch: !values['no-pretouch'],
    meta: values.meta || fs.includes('lilio-etcd'),
    metaFiles: int('meta-files', values['meta-files'], 1),
    metaClients: int('meta-clients', values['meta-clients'], 1),
  };
}

// ---------------------------------------------------------------- processes and aborts

class Aborted extends Error {
  constructor() {
    super('interrupted');
  }
}

let aborted = false;
/** Short-lived commands (dd, cp, ...) that an interrupt must stop. */
const commands = new Set<ChildProcess>();
/** Mount processes we started and have not seen exit; the exit hook's last resort. */
const mountPids = new Map<number, string>();
/** The etcd server of the lilio-etcd row, while it runs. */
let etcdPid: number | undefined;

function checkAbort(): void {
  if (aborted) throw new Aborted();
}

function onSignal(signal: NodeJS.Signals): void {
  if (aborted) {
    process.stderr.write(`\n${signal} again: still tearing down, please wait\n`);
    return;
  }
  aborted = true;
  process.stderr.write(`\n${signal}: stopping, tearing down the mount...\n`);
  for (const child of commands) child.kill('SIGTERM');
}

/** Synchronous last resort if we exit with a mount still up (uncaught error). */
function exitHook(): void {
  for (const [pid, mnt] of mountPids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {}
    spawnSync('fusermount', ['-uz', mnt], { stdio: 'ignore' });
  }
  if (etcdPid !== undefined) {
    try {
      process.kill(etcdPid, 'SIGKILL');
    } catch {}
  }
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

class StepError extends Error {}

function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .find(Boolean) ?? ''
  );
}
function lastLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .pop() ?? ''
  );
}

/** Runs a command to completion; the clock covers spawn to exit. Throws StepError on failure or timeout. */
function run(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string; discardStdout?: boolean } = {},
): Promise<RunResult> {
  checkAbort();
  return new Promise((resolvePromise, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(cmd, args, {
      cwd: opts.cwd ?? REPO,
      env: opts.env ?? process.env,
      stdio: ['ignore', opts.discardStdout ? 'ignore' : 'pipe', 'pipe'],
    });
    commands.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => {
      if (stdout.length < 1 * MiB) stdout += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 1 * MiB) stderr += d.toString();
    });
    let timedOut = false;
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, opts.timeoutMs)
      : undefined;
    child.on('error', (err) => {
      clearTimeout(timer);
      commands.delete(child);
      reject(new StepError(`${cmd}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      clearTimeout(timer);
      commands.delete(child);
      if (aborted) return reject(new Aborted());
      if (timedOut) return reject(new StepError(`${cmd} timed out after ${Math.round(opts.timeoutMs! / 1000)} s`));
      if (code !== 0) {
        const why = lastLine(stderr) || `exit ${code ?? signal}`;
        return reject(new StepError(`${cmd} failed: ${why}`));
      }
      resolvePromise({ code, signal, stdout, stderr, seconds });
    });
  });
}

/** Races a promise (an fs call that may hang on a sick mount) against a timeout. */
async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StepError(`${what} timed out after ${Math.round(ms / 1000)} s`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      server.close(() => resolvePromise(port));
    });
  });
}

// ---------------------------------------------------------------- mounts

function mountsUnder(prefix: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const fields = line.split(' ');
    const point = (fields[1] ?? '').replace(/\\040/g, ' ');
    if (point === prefix || point.startsWith(`${prefix}/`)) out.push(point);
  }
  return out;
}

function isMounted(mnt: string): boolean {
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const fields = line.split(' ');
    if ((fields[1] ?? '').replace(/\\040/g, ' ') === mnt && (fields[2] ?? '').startsWith('fuse')) return true;
  }
  return false;
}

interface Mount {
  child: ChildProcess;
  pid: number;
  mnt: string;
  exited: Promise<void>;
  hasExited: () => boolean;
  stdout: () => string;
  stderr: () => string;
}

/** Starts a mount process in its own session (so a terminal Ctrl-C reaches us, not it) and waits for the mount. */
async function startMount(
  cmd: string,
  args: string[],
  mnt: string,
  opts: { env?: NodeJS.ProcessEnv; waitMs?: number; logFile?: string } = {},
): Promise<Mount> {
  checkAbort();
  const child = spawn(cmd, args, {
    cwd: REPO,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  let exited = false;
  child.stdout?.on('data', (d: Buffer) => {
    stdout = (stdout + d.toString()).slice(-64 * KiB);
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr = stderr.length < 64 * KiB ? stderr + d.toString() : stderr;
  });
  const exitedPromise = new Promise<void>((r) => {
    child.on('close', () => {
      exited = true;
      if (child.pid !== undefined) mountPids.delete(child.pid);
      r();
    });
    child.on('error', (err) => {
      stderr += `${err.message}\n`;
      exited = true;
      r();
    });
  });
  const m: Mount = {
    child,
    pid: child.pid ?? -1,
    mnt,
    exited: exitedPromise,
    hasExited: () => exited,
    stdout: () => stdout,
    stderr: () => stderr,
  };
  if (child.pid !== undefined) mountPids.set(child.pid, mnt);
  const deadline = Date.now() + (opts.waitMs ?? MOUNT_WAIT_MS);
  try {
    for (;;) {
      checkAbort();
      if (isMounted(mnt)) break;
      if (exited) throw new StepError(`mount failed: ${firstLine(stderr) || firstLine(stdout) || 'process exited'}`);
      if (Date.now() > deadline) {
        const why = firstLine(stderr) || 'no mount';
        throw new StepError(`mount failed: ${why} after ${Math.round((opts.waitMs ?? MOUNT_WAIT_MS) / 1000)} s`);
      }
      await sleep(100);
    }
    // The kernel lists the mount before the daemon answers INIT: make sure it serves.
    await within(15_000, 'first stat of the mount', stat(mnt));
  } catch (err) {
    await teardown(m);
    throw err;
  }
  return m;
}

/** SIGTERM, then fusermount -u, then -uz, then SIGKILL. Returns what it had to do (empty if clean). */
async function teardown(m: Mount, graceMs = 30_000): Promise<string[]> {
  const notes: string[] = [];
  const wait = async (ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (m.hasExited() && !isMounted(m.mnt)) return true;
      await sleep(50);
    }
    return m.hasExited() && !isMounted(m.mnt);
  };
  if (!m.hasExited()) {
    try {
      process.kill(m.pid, 'SIGTERM');
    } catch {}
    if (await wait(graceMs)) return notes;
    notes.push(`no clean exit ${Math.round(graceMs / 1000)} s after SIGTERM`);
  }
  for (const flag of ['-u', '-uz']) {
    if (!isMounted(m.mnt)) break;
    spawnSync('fusermount', [flag, m.mnt], { stdio: 'ignore' });
    notes.push(`fusermount ${flag}`);
    await wait(3_000);
  }
  if (!m.hasExited()) {
    try {
      process.kill(m.pid, 'SIGKILL');
    } catch {}
    notes.push('SIGKILL');
    await Promise.race([m.exited, sleep(5_000)]);
  }
  if (isMounted(m.mnt)) notes.push(`STILL MOUNTED: ${m.mnt}`);
  return notes;
}

/** Peak RSS (VmHWM) of pid and its descendants, in bytes. */
function peakRss(pid: number): number {
  const children = new Map<number, number[]>();
  for (const entry of readdirSyncSafe('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const statLine = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(statLine.slice(statLine.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {}
  }
  let total = 0;
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop()!;
    try {
      const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) total += Number(m[1]) * KiB;
    } catch {}
    todo.push(...(children.get(p) ?? []));
  }
  return total;
}

function readdirSyncSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------- page cache

type ColdMode = 'drop_caches' | 'remount';

function meminfoCached(): number {
  const m = /^Cached:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * KiB : 0;
}

async function dropCaches(): Promise<void> {
  await run('sync', []);
  await writeFile('/proc/sys/vm/drop_caches', '3\n');
}

/** Does `echo 3 > drop_caches` work here, and actually empty the page cache? */
async function probeDropCaches(dir: string): Promise<{ mode: ColdMode; detail: string }> {
  const probe = join(dir, 'drop-caches-probe');
  const buf = Buffer.alloc(64 * MiB, 7);
  await writeFile(probe, buf);
  await readFile(probe);
  try {
    const before = meminfoCached();
    await dropCaches();
    const after = meminfoCached();
    const freed = before - after;
    if (freed < 32 * MiB)
      return { mode: 'remount', detail: `drop_caches freed only ${(freed / MiB).toFixed(0)} MiB of a 64 MiB probe` };
    return { mode: 'drop_caches', detail: `works (freed ${(freed / MiB).toFixed(0)} MiB incl. a 64 MiB probe)` };
  } catch (err) {
    return { mode: 'remount', detail: `unavailable: ${(err as Error).message}` };
  } finally {
    await rm(probe, { force: true });
  }
}

// ---------------------------------------------------------------- memory pre-touch

/**
 * On a VM with virtio-balloon free page reporting (this one: feature bit 5,
 * page_reporting_order 9), every page the guest frees is handed back to the
 * host within seconds, and the next first touch costs a host fault: ~0.75 ms
 * per MiB. A 1 GiB write allocates page cache (the FUSE inode's, and the
 * backend files' behind it) from such pages, so without care the write
 * figures swing 2× from run to run with whatever freed memory last (measured:
 * the ceiling at 229-491 MB/s, rclone 378-613 MB/s). Filling and deleting a
 * tmpfs file right before the step puts host-backed pages on the free lists
 * for the step to reuse: the same untimed preparation for every filesystem.
 */
interface Pretouch {
  dir: string | undefined;
  mib: number;
  detail: string;
}

function planPretouch(opts: Options): Pretouch {
  if (!opts.pretouch) return { dir: undefined, mib: 0, detail: 'off (--no-pretouch)' };
  const dir = '/dev/shm';
  const df = spawnSync('df', ['-k', '--output=avail', dir], { encoding: 'utf8' });
  const availMib = Math.floor(Number(df.stdout.trim().split('\n').pop()) / KiB);
  const memAvail = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  const memMib = memAvail ? Math.floor(Number(memAvail[1]) / KiB) : 0;
  // The FUSE inode's page cache + up to 3 replicas behind it, bounded by what the machine can spare.
  const want = 4 * opts.sizeMib + 512;
  const mib = Math.min(want, Math.floor(availMib * 0.8), Math.floor(memMib * 0.6));
  if (df.status !== 0 || !Number.isFinite(mib) || mib < 64)
    return { dir: undefined, mib: 0, detail: `unavailable (${dir}: ${availMib} MiB free)` };
  return { dir, mib, detail: `${mib} MiB of ${dir} filled and deleted before each write and read` };
}

async function pretouch(p: Pretouch): Promise<void> {
  if (!p.dir) return;
  const file = join(p.dir, `lilio-bench-pretouch-${process.pid}`);
  try {
    await run('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${p.mib}`]);
  } finally {
    await rm(file, { force: true });
  }
}

// ---------------------------------------------------------------- fixtures

interface Fixtures {
  big: string;
  bigBytes: number;
  tree: string;
  treeFiles: string[];
}

async function prepareFixtures(root: string, sizeMib: number, files: number): Promise<Fixtures> {
  await mkdir(root, { recursive: true });
  const big = join(root, 'big.bin');
  const block = Buffer.allocUnsafe(MiB);
  const fh = await open(big, 'w');
  try {
    for (let i = 0; i < sizeMib; i++) {
      checkAbort();
      randomFillSync(block);
      await fh.write(block, 0, MiB);
    }
  } finally {
    await fh.close();
  }
  const tree = join(root, 'tree');
  const treeFiles: string[] = [];
  const perDir = 100;
  const small = Buffer.allocUnsafe(4 * KiB);
  for (let d = 0; d * perDir < files; d++) {
    checkAbort();
    const dir = join(tree, `d${String(d).padStart(3, '0')}`);
    await mkdir(dir, { recursive: true });
    for (let f = d * perDir; f < Math.min(files, (d + 1) * perDir); f++) {
      const rel = join(`d${String(d).padStart(3, '0')}`, `f${String(f).padStart(5, '0')}.bin`);
      await writeFile(join(tree, rel), randomFillSync(small));
      treeFiles.push(rel);
    }
  }
  return { big, bigBytes: sizeMib * MiB, tree, treeFiles };
}

/** Puts the source file in the page cache, so the write step measures the mount, not our disk. */
async function warmFile(path: string): Promise<void> {
  await run('dd', [`if=${path}`, 'of=/dev/null', 'bs=8M']);
}
async function warmTree(fx: Fixtures): Promise<void> {
  for (const rel of fx.treeFiles) await readFile(join(fx.tree, rel));
}

/** Compares 1 MiB at the start, middle and end of a and b (the whole file if it is small). */
async function spotCheck(a: string, b: string, size: number): Promise<string | undefined> {
  const offsets = size <= 3 * MiB ? [0] : [0, Math.floor(size / 2 / MiB) * MiB, size - MiB];
  const len = size <= 3 * MiB ? size : MiB;
  const fa = await open(a, 'r');
  const fb = await within(15_000, 'open for verify', open(b, 'r'));
  try {
    for (const off of offsets) {
      const ba = Buffer.alloc(len);
      const bb = Buffer.alloc(len);
      await fa.read(ba, 0, len, off);
      const { bytesRead } = await within(15_000, 'read for verify', fb.read(bb, 0, len, off));
      if (bytesRead !== len || !ba.equals(bb)) return `content differs at offset ${off}`;
    }
  } finally {
    await fa.close();
    await fb.close();
  }
  return undefined;
}

async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for (const entry of await within(30_000, `readdir ${dir}`, readdir(dir, { withFileTypes: true }))) {
    if (entry.isDirectory()) n += await countFiles(join(dir, entry.name));
    else n++;
  }
  return n;
}

// ---------------------------------------------------------------- one filesystem

interface Measures {
  writeS?: number;
  readS?: number;
  cpS?: number;
  lsS?: number;
  rmS?: number;
  /** fio, 4 KiB random writes with fsync every 64, over RANDWRITE_MIB: bytes per second. */
  randwriteBps?: number;
  /** truncate -s 1T of a new file. */
  sparseS?: number;
  peakRssBytes?: number;
}
type StepName = keyof Measures;

interface FsResult extends Measures {
  id: FsId;
  label: string;
  /** Set when the filesystem never got mounted: the whole column is n/a. */
  unavailable?: string;
  /** Per-step failures. */
  errors: Partial<Record<StepName, string>>;
  readCold?: string;
  notes: string[];
  extra: Record<string, unknown>;
  meta?: MetaResult;
}

/** What a filesystem row needs: how to mount it, where to work inside the mount, and optional hooks. */
interface Target {
  /** (Re)mounts; may be called twice when the cold read needs a remount. */
  mount(): Promise<Mount>;
  /** The directory inside the mount where the files go. */
  work(mnt: string): string;
  /** Can be remounted without losing data. */
  persistent: boolean;
  /** Waits until write-back queued by the FS is done (rclone); returns seconds waited. */
  settle?(): Promise<number>;
  /** Bytes its backends hold now (lilio: the chunk files), to tell what a step wrote. */
  storedBytes?(): Promise<number>;
  /** Deletes replaced chunks now (lilio gc --grace 0), so storedBytes shows what stays. */
  collect?(): Promise<void>;
  /** The size of a file's metadata record in bytes (lilio stat --json). */
  recordBytes?(path: string): Promise<number>;
  /** Called after the write and read steps (memfs op counters). */
  afterStep?(m: Mount, step: 'write' | 'read', seconds: number, r: FsResult): Promise<void>;
}

interface Env {
  opts: Options;
  root: string;
  fx: Fixtures;
  cold: { mode: ColdMode; detail: string };
  pretouch: Pretouch;
}

async function runFs(env: Env, id: FsId, target: Target): Promise<FsResult> {
  const r: FsResult = { id, label: LABELS[id], errors: {}, notes: [], extra: {} };
  const { opts, fx } = env;
  const t = opts.stepTimeoutMs;
  let m: Mount | undefined;
  try {
    try {
      m = await target.mount();
    } catch (err) {
      if (err instanceof Aborted) throw err;
      r.unavailable = (err as Error).message;
      return r;
    }
    const work = target.work(m.mnt);
    await within(15_000, 'mkdir in the mount', mkdir(work, { recursive: true }));
    const big = join(work, 'big');
    const tree = join(work, 'tree');

    const step = async (name: StepName, fn: () => Promise<void>): Promise<boolean> => {
      try {
        await fn();
        return true;
      } catch (err) {
        if (err instanceof Aborted) throw err;
        r.errors[name] = (err as Error).message;
        process.stderr.write(`  ${LABELS[id]}: ${name} failed: ${(err as Error).message}\n`);
        return false;
      }
    };
    const log = (what: string) => process.stderr.write(`  ${LABELS[id]}: ${what}\n`);

    // 1. sequential write, closed (flush/commit) and fsynced
    await run('sync', []);
    await warmFile(fx.big);
    await pretouch(env.pretouch);
    log('seq write');
    const wrote = await step('writeS', async () => {
      const res = await run('dd', [`if=${fx.big}`, `of=${big}`, 'bs=1M', 'conv=fsync'], { timeoutMs: t });
      const st = await within(15_000, 'stat', stat(big));
      if (st.size !== fx.bigBytes) throw new StepError(`wrote ${st.size} bytes, expected ${fx.bigBytes}`);
      r.writeS = res.seconds;
      await target.afterStep?.(m!, 'write', res.seconds, r);
    });
    if (target.settle) {
      const waited = await target.settle();
      r.extra.writeSettleS = waited;
      if (r.writeS !== undefined)
        r.notes.push(
          `write: close() returned once the data sat in its VFS cache; the upload to the backend ended ` +
            `${waited.toFixed(1)} s later (after its 5 s write-back delay)`,
        );
    }

    // 2. sequential read, cold
    if (wrote) {
      await step('readS', async () => {
        if (env.cold.mode === 'drop_caches') {
          await dropCaches();
          await pretouch(env.pretouch);
          r.readCold = 'page cache dropped (drop_caches)';
        } else if (target.persistent) {
          log('remount for a cold read');
          const notes = await teardown(m!);
          if (notes.length) r.notes.push(`remount teardown: ${notes.join(', ')}`);
          m = undefined;
          m = await target.mount();
          await pretouch(env.pretouch);
          r.readCold = 'remounted between write and read (drop_caches unavailable)';
        } else {
          r.readCold = 'warm: in-memory FS cannot be remounted and drop_caches is unavailable';
        }
        log('seq read');
        const res = await run('dd', [`if=${join(target.work(m!.mnt), 'big')}`, 'of=/dev/null', 'bs=1M'], {
          timeoutMs: t,
        });
        r.readS = res.seconds;
        await target.afterStep?.(m!, 'read', res.seconds, r);
        const bad = await spotCheck(fx.big, big, fx.bigBytes);
        if (bad) throw new StepError(`read back wrong data: ${bad}`);
      });
    }

    // 3. cp -r of the tree
    await warmTree(fx);
    log('cp -r');
    const copied = await step('cpS', async () => {
      r.cpS = (await run('cp', ['-r', fx.tree, tree], { timeoutMs: t })).seconds;
    });
    if (copied && target.settle) r.extra.cpSettleS = await target.settle();

    // 4. ls -lR, cold
    if (copied) {
      if (env.cold.mode === 'drop_caches') await dropCaches();
      log('ls -lR');
      await step('lsS', async () => {
        r.lsS = (await run('ls', ['-lR', tree], { timeoutMs: t, discardStdout: true })).seconds;
        const n = await countFiles(tree);
        if (n !== fx.treeFiles.length) throw new StepError(`found ${n} files, expected ${fx.treeFiles.length}`);
        const sample = fx.treeFiles[Math.floor(fx.treeFiles.length / 2)]!;
        const bad = await spotCheck(join(fx.tree, sample), join(tree, sample), 4 * KiB);
        if (bad) throw new StepError(`${sample}: ${bad}`);
      });
    }

    // 5. rm -rf, cold
    if (copied) {
      if (env.cold.mode === 'drop_caches') await dropCaches();
      log('rm -rf');
      await step('rmS', async () => {
        r.rmS = (await run('rm', ['-rf', tree], { timeoutMs: t })).seconds;
      });
    }

    // 6. small random writes, as a database or a VM image does (fio, fsync every 64 writes)
    log('fio randwrite');
    await step('randwriteBps', async () => {
      const file = join(work, 'fio.dat');
      const before = await target.storedBytes?.();
      const res = await run(
        'fio',
        [
          '--name=randwrite',
          `--filename=${file}`,
          `--size=${RANDWRITE_MIB}M`,
          '--bs=4k',
          '--rw=randwrite',
          '--fsync=64',
          '--ioengine=psync',
          '--randrepeat=1',
          '--output-format=json',
        ],
        { timeoutMs: t },
      );
      const job = JSON.parse(res.stdout.slice(res.stdout.indexOf('{'))).jobs[0];
      r.randwriteBps = job.write.bw_bytes;
      if (before !== undefined && target.storedBytes) {
        // The layout pass wrote the file once before the random writes: count it out.
        const app = RANDWRITE_MIB * MiB;
        const written = (await target.storedBytes()) - before;
        r.extra.randwriteBackendPerApp = (written - 3 * app) / app;
        await target.collect?.();
        r.extra.randwriteStoredPerFile = ((await target.storedBytes()) - before) / (3 * app);
      }
    });

    // 7. a 1 TiB sparse file: one metadata commit, nothing stored. Lilio only: the in-memory
    // ceilings hold files in memory, and rclone's cache would upload a terabyte of zeros.
    if (target.recordBytes) log('truncate -s 1T');
    if (target.recordBytes)
      await step('sparseS', async () => {
        const file = join(work, 'sparse.img');
        r.sparseS = (await run('truncate', ['-s', '1T', file], { timeoutMs: t })).seconds;
        if (target.recordBytes) r.extra.sparseRecordBytes = await target.recordBytes(file);
        await run('rm', ['-f', file], { timeoutMs: t });
      });

    // 8. peak RSS, at the end, before unmounting
    const rss = peakRss(m.pid);
    if (rss > 0) r.peakRssBytes = rss;
    else r.errors.peakRssBytes = 'cannot read VmHWM';

    // 9. the metadata table's measures, after the RSS reading so they do not count in it
    if (opts.meta && (id === 'lilio' || id === 'lilio-etcd')) {
      r.meta = await measureMetadata(
        work,
        { files: opts.metaFiles, clients: opts.metaClients, timeoutMs: t },
        {
          run: (cmd, args, o) => run(cmd, args, o),
          dropCaches: () => (env.cold.mode === 'drop_caches' ? dropCaches() : Promise.resolve()),
          log,
        },
      );
    }
    return r;
  } finally {
    if (m) {
      log2(`  ${LABELS[id]}: unmounting`);
      const notes = await teardown(m);
      if (notes.length) r.notes.push(`teardown: ${notes.join(', ')}`);
    }
  }
}

function log2(text: string): void {
  process.stderr.write(`${text}\n`);
}

// ---------------------------------------------------------------- the four targets

/**
 * An in-memory FS: scripts/bench/memfs.ts on fuse-native ('ceiling'), or
 * src/fuse's example filesystem on our own FUSE session ('ceiling-fuse',
 * without xattrs like the fuse-native one, so the kernel sends no GETXATTR
 * security.capability before each WRITE).
 */
function ceilingTarget(env: Env, id: 'ceiling' | 'ceiling-fuse'): Target {
  const mnt = join(env.root, id, 'mnt');
  const [script, extra] = id === 'ceiling' ? [MEMFS, []] : [FUSE_MEMFS, ['--no-xattrs']];
  // Room for the big file and the tree, touched before mounting (see memfs.ts).
  const prealloc = env.opts.sizeMib + Math.ceil((env.opts.files * 4 * KiB) / MiB) + 64;
  const waitStats = async (m: Mount): Promise<Record<string, number> | undefined> => {
    const before = m.stdout().length;
    process.kill(m.pid, 'SIGUSR2');
    const deadline = Date.now() + 3_000;
    while (Date.now() < deadline) {
      const fresh = m.stdout().slice(Math.max(0, before - 1));
      const line = /stats (\{.*\})\n/.exec(fresh);
      if (line) return JSON.parse(line[1]!) as Record<string, number>;
      await sleep(20);
    }
    return undefined;
  };
  return {
    persistent: false,
    work: (m) => m,
    async mount() {
      await mkdir(mnt, { recursive: true });
      const m = await startMount(
        process.execPath,
        ['--import', 'tsx', script, realpathSync(mnt), '--prealloc-mib', String(prealloc), ...extra],
        realpathSync(mnt),
        { waitMs: 120_000 },
      );
      const deadline = Date.now() + 10_000;
      while (!m.stdout().includes('ready') && Date.now() < deadline) await sleep(20);
      await waitStats(m); // reset the counters: mount-time ops are not the write's
      return m;
    },
    async afterStep(m, which, seconds, r) {
      const s = await waitStats(m);
      if (!s) return;
      r.extra[`${which}Ops`] = s;
      const calls = which === 'write' ? s.writes! : s.reads!;
      const bytes = which === 'write' ? s.writeBytes! : s.readBytes!;
      const max = which === 'write' ? s.maxWrite! : s.maxRead!;
      if (calls > 0)
        r.notes.push(
          `${which}: ${calls} FUSE ${which} calls, avg ${(bytes / calls / KiB).toFixed(0)} KiB, ` +
            `max ${(max / KiB).toFixed(0)} KiB → ${((seconds / calls) * 1e6).toFixed(0)} µs per call`,
        );
    },
  };
}

function rcloneTarget(env: Env): Target {
  const base = join(env.root, 'rclone');
  const remote = join(base, 'remote');
  const cache = join(base, 'cache');
  const mnt = join(base, 'mnt');
  let port = 0;
  const stats = async (): Promise<{ inProgress: number; queued: number } | undefined> => {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/vfs/stats`, { method: 'POST' });
      const body = (await res.json()) as { diskCache?: { uploadsInProgress?: number; uploadsQueued?: number } };
      return { inProgress: body.diskCache?.uploadsInProgress ?? 0, queued: body.diskCache?.uploadsQueued ?? 0 };
    } catch {
      return undefined;
    }
  };
  return {
    persistent: true,
    work: (m) => m,
    async mount() {
      await mkdir(remote, { recursive: true });
      await mkdir(cache, { recursive: true });
      await mkdir(mnt, { recursive: true });
      port = await freePort();
      return startMount(
        'rclone',
        [
          'mount',
          realpathSync(remote),
          realpathSync(mnt),
          '--vfs-cache-mode',
          'writes',
          '--cache-dir',
          realpathSync(cache),
          '--config',
          '/dev/null',
          '--rc',
          '--rc-addr',
          `127.0.0.1:${port}`,
          '--rc-no-auth',
        ],
        realpathSync(mnt),
      );
    },
    async settle() {
      const started = Date.now();
      const deadline = started + env.opts.stepTimeoutMs;
      while (Date.now() < deadline) {
        checkAbort();
        const s = await stats();
        if (s && s.inProgress === 0 && s.queued === 0) break;
        await sleep(100);
      }
      return (Date.now() - started) / 1000;
    },
  };
}

/** `etcd`: the metadata on that server instead of the embedded SQLite store (the lilio-etcd row). */
async function lilioTarget(
  env: Env,
  encrypted: boolean,
  build: BuildState,
  etcd?: BenchEtcd,
  libfuse = false,
): Promise<Target> {
  const base = join(env.root, etcd ? 'lilio-etcd' : encrypted ? 'lilio-enc' : libfuse ? 'lilio-libfuse' : 'lilio');
  const home = join(base, 'home');
  const mnt = join(base, 'mnt');
  const bucket = encrypted ? 'benchenc' : 'bench';
  const lenv = { ...process.env, LILIO_HOME: home };
  const configArgs: string[] = [];
  if (etcd) {
    // The embedded default's backends, the metadata on etcd.
    await mkdir(home, { recursive: true });
    const config = join(home, 'config.json');
    const storages = [1, 2, 3].map((i) => ({ name: `local-${i}`, type: 'local', path: join(home, 'data', String(i)) }));
    const metadata = { type: 'etcd', etcd: { endpoints: [etcd.endpoint], prefix: '/bench' } };
    await writeFile(config, JSON.stringify({ metadata, storages, quorum: { n: 3, w: 2, r: 2 } }));
    configArgs.push('--config', config);
  }
  let created = false;
  return {
    persistent: true,
    work: (m) => join(m, bucket),
    async storedBytes() {
      const du = await run('du', ['-sb', join(home, 'data')], { timeoutMs: 60_000 });
      return Number(du.stdout.split(/\s/)[0]);
    },
    async collect() {
      await run(LILIO_BIN, ['gc', '--grace', '0', ...configArgs], { env: lenv, timeoutMs: 120_000 });
    },
    async recordBytes(path) {
      const key = `${bucket}/${path.slice(path.lastIndexOf(`/${bucket}/`) + 1 + bucket.length + 1)}`;
      const st = await run(LILIO_BIN, ['stat', key, '--json', ...configArgs], { env: lenv, timeoutMs: 60_000 });
      return Buffer.byteLength(st.stdout.trim());
    },
    async mount() {
      if (!build.ok) throw new StepError(`build failed: ${build.error}`);
      await mkdir(home, { recursive: true });
      await mkdir(mnt, { recursive: true });
      if (!created) {
        const args = ['bucket', 'create', bucket, ...(encrypted ? ['--encrypt'] : []), ...configArgs];
        try {
          await run(LILIO_BIN, args, { env: lenv, timeoutMs: 60_000 });
        } catch (err) {
          if (err instanceof Aborted) throw err;
          throw new StepError(`bucket create failed: ${(err as Error).message.replace(/^\S+ failed: /, '')}`);
        }
        created = true;
      }
      const fuseArgs = libfuse ? ['--fuse', 'libfuse'] : [];
      const args = ['mount', realpathSync(mnt), '--foreground', ...fuseArgs, ...configArgs];
      return startMount(LILIO_BIN, args, realpathSync(mnt), {
        env: lenv,
      });
    },
  };
}

interface BuildState {
  ok: boolean;
  error?: string;
}

async function buildLilio(opts: Options): Promise<BuildState> {
  const dist = join(REPO, 'dist', 'cli', 'main.js');
  if (!opts.build)
    return existsSync(dist) ? { ok: true } : { ok: false, error: 'dist/cli/main.js missing (--no-build)' };
  log2('building (npm run build)...');
  try {
    await run('npm', ['run', 'build', '--silent'], { timeoutMs: 300_000 });
    return { ok: true };
  } catch (err) {
    if (err instanceof Aborted) throw err;
    if (existsSync(dist)) {
      log2(`warning: npm run build failed (${(err as Error).message}); using the existing dist/`);
      return { ok: true };
    }
    return { ok: false, error: firstLine((err as Error).message) };
  }
}

// ---------------------------------------------------------------- report

function mbps(bytes: number, s: number | undefined): number | undefined {
  return s === undefined ? undefined : bytes / 1e6 / s;
}
function fmtRate(v: number): string {
  return v >= 100 ? v.toFixed(0) : v.toFixed(1);
}
function fmtRatio(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? 'n/a' : `${v.toFixed(2)}×`;
}

interface Row {
  label: string;
  step: StepName;
  cell: (r: FsResult) => string | undefined;
  /** Bigger is better value, for ratios. */
  score: (r: FsResult) => number | undefined;
}

function rows(env: Env): Row[] {
  const { fx } = env;
  const size = env.opts.sizeMib >= 1024 ? `${env.opts.sizeMib / 1024} GiB` : `${env.opts.sizeMib} MiB`;
  const n = fx.treeFiles.length;
  const timeRow = (label: string, step: 'cpS' | 'lsS' | 'rmS'): Row => ({
    label,
    step,
    cell: (r) =>
      r[step] === undefined ? undefined : `${r[step]!.toFixed(2)} s (${(n / r[step]!).toFixed(0)} files/s)`,
    score: (r) => (r[step] === undefined ? undefined : 1 / r[step]!),
  });
  return [
    {
      label: `seq write ${size}, dd bs=1M conv=fsync (MB/s)`,
      step: 'writeS',
      cell: (r) => {
        const v = mbps(fx.bigBytes, r.writeS);
        return v === undefined ? undefined : fmtRate(v);
      },
      score: (r) => mbps(fx.bigBytes, r.writeS),
    },
    {
      label: `seq read ${size}, cold, dd bs=1M (MB/s)`,
      step: 'readS',
      cell: (r) => {
        const v = mbps(fx.bigBytes, r.readS);
        return v === undefined ? undefined : fmtRate(v);
      },
      score: (r) => mbps(fx.bigBytes, r.readS),
    },
    timeRow(`cp -r ${n} × 4 KiB files (s, files/s)`, 'cpS'),
    timeRow(`ls -lR ${n} files, cold (s, files/s)`, 'lsS'),
    timeRow(`rm -rf ${n} files, cold (s, files/s)`, 'rmS'),
    {
      label: `fio 4 KiB randwrite, fsync every 64, ${RANDWRITE_MIB} MiB (MB/s)`,
      step: 'randwriteBps',
      cell: (r) => {
        if (r.randwriteBps === undefined) return undefined;
        const per = r.extra.randwriteBackendPerApp as number | undefined;
        const kept = r.extra.randwriteStoredPerFile as number | undefined;
        const detail =
          per === undefined ? '' : ` (backend ${per.toFixed(2)}× written, ${kept?.toFixed(2)}× kept after gc)`;
        return `${fmtRate(r.randwriteBps / 1e6)}${detail}`;
      },
      score: (r) => r.randwriteBps,
    },
    {
      label: 'truncate -s 1T of a new file (ms)',
      step: 'sparseS',
      cell: (r) => {
        if (r.sparseS === undefined) return undefined;
        const bytes = r.extra.sparseRecordBytes as number | undefined;
        return `${(r.sparseS * 1000).toFixed(0)}${bytes === undefined ? '' : ` (record ${bytes} B)`}`;
      },
      score: (r) => (r.sparseS === undefined ? undefined : 1 / r.sparseS),
    },
    {
      label: 'mount process peak RSS, VmHWM (MB)',
      step: 'peakRssBytes',
      cell: (r) => (r.peakRssBytes === undefined ? undefined : (r.peakRssBytes / MiB).toFixed(0)),
      // Less memory is better: the ratio columns read "how many times lighter".
      score: (r) => (r.peakRssBytes === undefined ? undefined : 1 / r.peakRssBytes),
    },
  ];
}

function table(env: Env, results: Map<FsId, FsResult>): string {
  const cols: FsId[] = [...DEFAULT_FS, ...(results.has('lilio-etcd') ? (['lilio-etcd'] as const) : [])];
  const head = ['measure', ...cols.map((c) => LABELS[c]), 'lilio / ceiling', 'lilio vs rclone'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  rows(env).forEach((row, i) => {
    const cells = cols.map((c) => {
      const r = results.get(c);
      if (!r) return 'not run';
      if (r.unavailable) return i === 0 ? `n/a (${r.unavailable})` : 'n/a';
      const v = row.cell(r);
      if (v !== undefined) return v;
      const err = r.errors[row.step];
      return err ? `n/a (${err})` : 'n/a';
    });
    const score = (id: FsId) => {
      const r = results.get(id);
      return r && !r.unavailable ? row.score(r) : undefined;
    };
    const lilio = score('lilio');
    const ceiling = score('ceiling');
    const rclone = score('rclone');
    const vsCeiling = lilio !== undefined && ceiling !== undefined ? lilio / ceiling : undefined;
    const vsRclone = lilio !== undefined && rclone !== undefined ? lilio / rclone : undefined;
    lines.push(`| ${[row.label, ...cells, fmtRatio(vsCeiling), fmtRatio(vsRclone)].join(' | ')} |`);
  });
  return lines.join('\n');
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${usage()}\n`);
    return 64;
  }
  if (opts.fs.length === 0) {
    process.stderr.write(`--fs: nothing to run\n${usage()}\n`);
    return 64;
  }
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  process.on('exit', exitHook);

  const started = Date.now();
  const root = realpathSync(await mkdtemp(join(tmpdir(), 'lilio-bench-mount-')));
  const results = new Map<FsId, FsResult>();
  let env: Env | undefined;
  let etcd: BenchEtcd | undefined;
  let code = 0;
  try {
    const df = spawnSync('df', ['-h', '--output=source,target,avail', root], { encoding: 'utf8' }).stdout.trim();
    log2(`work dir ${root}\n${df}`);
    const cold = await probeDropCaches(root);
    log2(`drop_caches: ${cold.detail}`);
    const build = opts.fs.some((id) => id.startsWith('lilio')) ? await buildLilio(opts) : { ok: false };
    log2(`preparing ${opts.sizeMib} MiB of random data and ${opts.files} files of 4 KiB...`);
    const fx = await prepareFixtures(join(root, 'src'), opts.sizeMib, opts.files);
    const plan = planPretouch(opts);
    log2(`memory pre-touch: ${plan.detail}`);
    env = { opts, root, fx, cold, pretouch: plan };

    for (const id of opts.fs) {
      checkAbort();
      log2(`${LABELS[id]}:`);
      if (id === 'lilio-etcd') {
        try {
          etcd = await startBenchEtcd(join(root, 'etcd'), (pid) => {
            etcdPid = pid;
          });
          log2(`  etcd on ${etcd.endpoint} (pid ${etcd.pid}, data on ${root})`);
        } catch (err) {
          results.set(id, {
            id,
            label: LABELS[id],
            errors: {},
            notes: [],
            extra: {},
            unavailable: (err as Error).message,
          });
          continue;
        }
      }
      const target =
        id === 'ceiling' || id === 'ceiling-fuse'
          ? ceilingTarget(env, id)
          : id === 'rclone'
            ? rcloneTarget(env)
            : await lilioTarget(
                env,
                id === 'lilio-enc',
                build,
                id === 'lilio-etcd' ? etcd : undefined,
                id === 'lilio-libfuse',
              );
      const r = await runFs(env, id, target);
      results.set(id, r);
      // Each filesystem's backing data goes as soon as it is measured (3 replicas of 1 GiB add up).
      const dir = join(root, id);
      if (mountsUnder(dir).length === 0) await rm(dir, { recursive: true, force: true });
    }
  } catch (err) {
    if (err instanceof Aborted) {
      code = 130;
    } else {
      process.stderr.write(`bench-mount: ${(err as Error).stack ?? err}\n`);
      code = 1;
    }
  } finally {
    await etcd?.stop();
    const left = mountsUnder(root);
    for (const mnt of left) {
      spawnSync('fusermount', ['-u', mnt], { stdio: 'ignore' });
      if (isMounted(mnt)) spawnSync('fusermount', ['-uz', mnt], { stdio: 'ignore' });
    }
    if (mountsUnder(root).length === 0) await rm(root, { recursive: true, force: true });
    else process.stderr.write(`bench-mount: NOT removing ${root}: still mounted: ${mountsUnder(root).join(' ')}\n`);
  }

  if (env && results.size > 0) {
    const elapsed = (Date.now() - started) / 1000;
    const out: string[] = [];
    out.push(
      `## lilio mount benchmark — ${cpus().length} CPUs, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ` +
        `node ${process.version}, ${elapsed.toFixed(0)} s`,
    );
    out.push('');
    out.push(table(env, results));
    out.push('');
    out.push(
      'MB = 10^6 bytes for throughput (as dd reports), MiB for RSS. "lilio / ceiling": lilio\'s throughput ' +
        'over the ceiling\'s (want ≥ 0.8; for RSS, how many times lighter). "lilio vs rclone": speedup, > 1 means ' +
        'lilio is better (rclone time / lilio time; for RSS rclone / lilio).',
    );
    out.push(
      `Cold reads: ${env.cold.mode === 'drop_caches' ? 'sync; echo 3 > /proc/sys/vm/drop_caches before the read, ls and rm' : `drop_caches ${env.cold.detail}: remounted between write and read instead`}.`,
    );
    out.push(`Memory pre-touch: ${env.pretouch.detail} (see pretouch() in scripts/bench-mount.ts).`);
    if (env.opts.meta) {
      const metaOptions = { files: env.opts.metaFiles, clients: env.opts.metaClients, timeoutMs: 0 };
      const columns = (['lilio', 'lilio-etcd'] as const)
        .filter((id) => results.has(id))
        .map((id) => ({ label: LABELS[id], result: results.get(id)!.meta, unavailable: results.get(id)!.unavailable }));
      out.push('', '### metadata', '', metadataTable(columns, metaOptions), '');
      out.push(
        'Each client is a process making one synchronous fs call after another; creates are commits of inline ' +
          'files. For reference: JuiceFS on etcd reports about 1,800 creates/s and 2,800 stats/s with 12 clients; ' +
          's3fs manages about 60 creates/s on this machine.',
      );
      for (const [, r] of results) for (const err of r.meta?.errors ?? []) out.push(`- ${r.label}: ${err}`);
    }
    for (const r of results.values()) {
      const notes = [
        ...(r.readCold && r.readCold !== 'page cache dropped (drop_caches)' ? [r.readCold] : []),
        ...r.notes,
      ];
      for (const [step, err] of Object.entries(r.errors)) notes.push(`${step} failed: ${err}`);
      if (r.unavailable) notes.push(r.unavailable);
      for (const note of notes) out.push(`- ${r.label}: ${note}`);
    }
    process.stdout.write(`${out.join('\n')}\n`);
    if (opts.json) {
      const dump = {
        date: new Date().toISOString(),
        machine: { cpus: cpus().length, model: cpus()[0]?.model, memBytes: totalmem(), node: process.version },
        params: {
          sizeMib: opts.sizeMib,
          bigBytes: env.fx.bigBytes,
          files: env.fx.treeFiles.length,
          fileBytes: 4 * KiB,
        },
        coldReads: env.cold,
        pretouch: env.pretouch,
        elapsedS: elapsed,
        results: [...results.values()].map((r) => ({
          ...r,
          writeMBs: mbps(env!.fx.bigBytes, r.writeS),
          readMBs: mbps(env!.fx.bigBytes, r.readS),
        })),
      };
      await writeFile(opts.json, `${JSON.stringify(dump, null, 2)}\n`);
      log2(`raw numbers: ${opts.json}`);
    }
  }
  const stuck = [...results.values()].some((r) => r.notes.some((n) => n.includes('STILL MOUNTED')));
  return stuck ? 1 : code;
}

main().then(
  (code) => {
    process.exitCode = code;
    // Do not wait on stray handles (an HTTP keep-alive to rclone's rc, a stuck fs call).
    setTimeout(() => process.exit(code), 200).unref();
  },
  (err) => {
    process.stderr.write(`bench-mount: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
