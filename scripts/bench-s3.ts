/**
 * scripts/bench-s3: Lilio's S3 API beside Lilio's own HTTP API and beside
 * s3rver (the npm S3 emulator: one copy on one disk, no replication), in one
 * run. One `lilio server --listen --s3-listen` (built dist/, embedded default:
 * SQLite metadata, three local backends, N=3 W=2 R=2) serves both Lilio
 * columns from the same engine, so the S3/API ratio is the protocol's cost.
 * The two S3 columns use the same SDK client settings (signed payloads, as
 * the SDK does over http; no extra request checksums).
 *
 * Rows: PUT and GET of 1 MiB, 16 MiB (multipart over S3: two 8 MiB parts
 * sent one after the other, then the completion; Lilio's API has no multipart
 * and takes one PUT) and a big object (default 1 GiB, single PUT; smaller when
 * the disk is tight), and of 2,000 objects of 4 KiB, with 1 and 8 concurrent
 * clients (the big object with 1).
 *
 *   scripts/bench-s3 [--quick] [--big-size 1GiB] [--skip-s3rver]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { parseSize } from '../src/config/size.js';
import { launchS3rver, S3RVER_CREDENTIALS } from '../test/fixtures/s3.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const ROOT = fileURLToPath(new URL('..', import.meta.url));

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    'big-size': { type: 'string' },
    'skip-s3rver': { type: 'boolean', default: false },
  },
});

/**
 * What a target does: put `size` bytes under `key` from `body(length)` (in parts of `partSize` where the
 * protocol has them), get it back (bytes counted, not kept).
 */
interface Target {
  name: string;
  put(key: string, size: number, body: (length: number) => Readable, partSize?: number): Promise<void>;
  get(key: string): Promise<number>;
}

function pattern(size: number): (length: number) => Readable {
  const block = randomBytes(Math.min(size, MiB));
  return (length) =>
    Readable.from(
      (function* () {
        for (let off = 0; off < length; off += block.length) {
          yield block.subarray(0, Math.min(block.length, length - off));
        }
      })(),
    );
}

function s3Target(
  name: string,
  endpoint: string,
  credentials: { accessKeyId: string; secretAccessKey: string },
): Target {
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: new NodeHttpHandler({ httpAgent: new Agent({ keepAlive: true, maxSockets: 32 }) }),
  });
  return {
    name,
    async put(key, size, body, partSize) {
      if (partSize === undefined) {
        await client.send(new PutObjectCommand({ Bucket: 'bench', Key: key, Body: body(size), ContentLength: size }));
        return;
      }
      const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: 'bench', Key: key }));
      const Parts: Array<{ PartNumber: number; ETag: string }> = [];
      for (let off = 0, PartNumber = 1; off < size; off += partSize, PartNumber++) {
        const length = Math.min(partSize, size - off);
        const part = await client.send(
          new UploadPartCommand({
            Bucket: 'bench',
            Key: key,
            UploadId,
            PartNumber,
            Body: body(length),
            ContentLength: length,
          }),
        );
        Parts.push({ PartNumber, ETag: part.ETag! });
      }
      await client.send(
        new CompleteMultipartUploadCommand({ Bucket: 'bench', Key: key, UploadId, MultipartUpload: { Parts } }),
      );
    },
    async get(key) {
      const got = await client.send(new GetObjectCommand({ Bucket: 'bench', Key: key }));
      let n = 0;
      for await (const piece of got.Body as Readable) n += (piece as Buffer).length;
      return n;
    },
  };
}

function apiTarget(endpoint: string, token: string): Target {
  const url = new URL(endpoint);
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  const call = (method: string, key: string, size?: number, body?: Readable) =>
    new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          method,
          path: `/bench/${key}`,
          agent,
          headers: {
            authorization: `Bearer ${token}`,
            ...(size !== undefined ? { 'content-length': String(size) } : {}),
          },
        },
        (res) => {
          let n = 0;
          res.on('data', (d: Buffer) => {
            n += d.length;
          });
          res.on('end', () =>
            res.statusCode! < 300 ? resolve(n) : reject(new Error(`${method} ${key}: ${res.statusCode}`)),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      if (body) body.pipe(req);
      else req.end();
    });
  return {
    name: 'Lilio API',
    put: async (key, size, body) => {
      await call('PUT', key, size, body(size));
    },
    get: (key) => call('GET', key),
  };
}

interface LilioServer {
  s3: string;
  api: string;
  token: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  stop(): Promise<void>;
}

async function startLilio(home: string): Promise<LilioServer> {
  const token = randomBytes(24).toString('base64url');
  writeFileSync(join(home, 'tokens'), `${token}\n`, { mode: 0o600 });
  const credentials = { accessKeyId: 'LKBENCH', secretAccessKey: randomBytes(30).toString('base64url') };
  writeFileSync(
    join(home, 's3-credentials.json'),
    JSON.stringify({
      keys: [{ accessKeyId: 'LKBENCH', secret: credentials.secretAccessKey, buckets: ['*'], readOnly: false }],
    }),
    { mode: 0o600 },
  );
  const child: ChildProcess = spawn(
    process.execPath,
    [
      join(ROOT, 'bin/lilio'),
      'server',
      '--listen',
      '127.0.0.1:0',
      '--s3-listen',
      '127.0.0.1:0',
      '--token-file',
      join(home, 'tokens'),
    ],
    {
      env: { ...process.env, LILIO_HOME: home, LILIO_CONFIG: '', NODE_OPTIONS: '' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (let i = 0; i < 400 && !/S3 API on/.test(err); i++) await new Promise((r) => setTimeout(r, 50));
  const api = /serving (http:\/\/[\d.:]+)/.exec(err)?.[1];
  const s3 = /S3 API on (http:\/\/[\d.:]+)/.exec(err)?.[1];
  if (!api || !s3) {
    child.kill('SIGKILL');
    throw new Error(`lilio server did not start:\n${err}`);
  }
  return {
    api,
    s3,
    token,
    credentials,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function timed(count: number, concurrency: number, task: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      for (let i = next++; i < count; i = next++) await task(i);
    }),
  );
  return performance.now() - started;
}

interface Row {
  label: string;
  size: number;
  count: number;
  concurrency: number;
  /** Multipart over S3, in parts of this size. */
  partSize?: number;
}

function label(size: number): string {
  return size >= GiB ? `${size / GiB} GiB` : size >= MiB ? `${size / MiB} MiB` : `${size / KiB} KiB`;
}

const free = statfsSync(tmpdir());
const freeBytes = free.bavail * free.bsize;
let big = values['big-size'] ? parseSize(values['big-size']) : values.quick ? 64 * MiB : GiB;
if (big === undefined) throw new Error(`--big-size: not a size`);
// Lilio keeps three replicas of each of its two copies (S3 and API rows), s3rver one: 7x, and room to spare.
if (big * 7 + 2 * GiB > freeBytes) {
  const fallback = 256 * MiB;
  console.error(
    `only ${(freeBytes / GiB).toFixed(1)} GiB free: the big object is ${label(fallback)} instead of ${label(big)}`,
  );
  big = fallback;
}
const q = values.quick;
const rows: Row[] = [
  { label: '1 MiB', size: MiB, count: q ? 16 : 64, concurrency: 1 },
  { label: '1 MiB', size: MiB, count: q ? 32 : 128, concurrency: 8 },
  { label: '16 MiB mp', size: 16 * MiB, count: q ? 4 : 8, concurrency: 1, partSize: 8 * MiB },
  { label: '16 MiB mp', size: 16 * MiB, count: q ? 8 : 16, concurrency: 8, partSize: 8 * MiB },
  { label: label(big), size: big, count: 1, concurrency: 1 },
  { label: '4 KiB', size: 4 * KiB, count: q ? 500 : 2000, concurrency: 1 },
  { label: '4 KiB', size: 4 * KiB, count: q ? 500 : 2000, concurrency: 8 },
];

const home = mkdtempSync(join(tmpdir(), 'lilio-bench-s3-'));
const lilio = await startLilio(home);
const s3rver = values['skip-s3rver'] ? undefined : await launchS3rver(['bench']);
const targets: Target[] = [
  s3Target('S3 API', lilio.s3, lilio.credentials),
  apiTarget(lilio.api, lilio.token),
  ...(s3rver ? [s3Target('s3rver', s3rver.endpoint, { ...S3RVER_CREDENTIALS })] : []),
];
type Result = { put: number; get: number };
const results: Array<Map<string, Result>> = [];
try {
  const admin = new S3Client({
    endpoint: lilio.s3,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: lilio.credentials,
  });
  await admin.send(new CreateBucketCommand({ Bucket: 'bench' }));
  for (const [r, row] of rows.entries()) {
    const body = pattern(row.size);
    const byTarget = new Map<string, Result>();
    for (const target of targets) {
      const key = (i: number) => `r${r}/${i}`;
      const putMs = await timed(row.count, row.concurrency, (i) => target.put(key(i), row.size, body, row.partSize));
      let wrong = 0;
      const getMs = await timed(row.count, row.concurrency, async (i) => {
        if ((await target.get(key(i))) !== row.size) wrong++;
      });
      if (wrong) throw new Error(`${target.name}: ${wrong} objects read back at the wrong size`);
      // Throughput for sizes, requests per second for the small objects.
      const rate = (ms: number) =>
        row.size >= MiB ? (row.count * row.size) / MiB / (ms / 1000) : row.count / (ms / 1000);
      byTarget.set(target.name, { put: rate(putMs), get: rate(getMs) });
      process.stderr.write(`. ${row.label} x${row.count} c${row.concurrency} ${target.name}\n`);
    }
    results.push(byTarget);
  }
} finally {
  await lilio.stop();
  await s3rver?.stop();
  rmSync(home, { recursive: true, force: true });
}

const fmt = (n: number | undefined) => (n === undefined ? '-' : n >= 100 ? n.toFixed(0) : n.toFixed(1));
const ratio = (a: number | undefined, b: number | undefined) => (a && b ? `${(a / b).toFixed(2)}` : '-');
console.log(`\nS3 API vs Lilio's HTTP API vs s3rver (${q ? 'quick' : 'full'} run; MB/s for sizes, req/s for 4 KiB)\n`);
console.log('| op  | object | count | conc | S3 API | Lilio API | s3rver | S3/API | S3/s3rver |');
console.log('|-----|--------|------:|-----:|-------:|----------:|-------:|-------:|----------:|');
for (const [r, row] of rows.entries()) {
  for (const op of ['put', 'get'] as const) {
    const s3 = results[r]?.get('S3 API')?.[op];
    const api = results[r]?.get('Lilio API')?.[op];
    const emu = results[r]?.get('s3rver')?.[op];
    console.log(
      `| ${op.toUpperCase().padEnd(3)} | ${row.label.padEnd(6)} | ${String(row.count).padStart(5)} | ${String(row.concurrency).padStart(4)} | ${fmt(s3).padStart(6)} | ${fmt(api).padStart(9)} | ${fmt(emu).padStart(6)} | ${ratio(s3, api).padStart(6)} | ${ratio(s3, emu).padStart(9)} |`,
    );
  }
}
