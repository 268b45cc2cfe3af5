/**
 * scripts/bench-s3-backend: the s3 backend's put/get throughput against a local s3rver
 * (or any S3 endpoint given by --endpoint/--bucket and the AWS environment).
 * The figures against s3rver mostly measure s3rver itself (JavaScript, one
 * process, a file plus metadata per object); they show the backend's overhead
 * and how it scales with concurrency, not what a real S3 service would do.
 *
 *   node --import tsx scripts/bench-s3-backend.ts [--quick] [--endpoint URL --bucket B --region R]
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { S3Backend } from '../src/backends/s3.js';
import { launchS3rver, S3RVER_CREDENTIALS } from '../test/fixtures/s3.js';

const MiB = 1024 * 1024;
const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    endpoint: { type: 'string' },
    bucket: { type: 'string', default: 'lilio-bench' },
    region: { type: 'string', default: 'us-east-1' },
  },
});

const server = values.endpoint ? undefined : await launchS3rver([values.bucket]);
const backend = new S3Backend({
  name: 'bench',
  endpoint: values.endpoint ?? server?.endpoint,
  region: values.region,
  bucket: values.bucket,
  prefix: `bench-${Date.now()}/`,
  forcePathStyle: true,
  credentials: server ? { ...S3RVER_CREDENTIALS } : undefined,
});

const totalBytes = (values.quick ? 16 : 64) * MiB;
const rows: Array<[number, number]> = [
  [64 * 1024, 1],
  [64 * 1024, 16],
  [MiB, 1],
  [MiB, 4],
  [MiB, 16],
  [4 * MiB, 4],
];

/** Runs `task` for each index with at most `concurrency` in flight; returns elapsed ms. */
async function timed(count: number, concurrency: number, task: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await task(next++);
    }),
  );
  return performance.now() - started;
}

try {
  await backend.put('0'.repeat(32), Buffer.from('warm up the connection and the SDK'));
  console.log(`s3 backend -> ${values.endpoint ?? `s3rver ${server?.endpoint}`}, ${totalBytes / MiB} MiB per row`);
  console.log('chunk     conc   put MB/s  put ops/s   get MB/s  get ops/s');
  for (const [size, concurrency] of rows) {
    const count = Math.max(concurrency, Math.round(totalBytes / size));
    const data = randomBytes(size);
    const ids = Array.from({ length: count }, () => randomBytes(16).toString('hex'));
    const putMs = await timed(count, concurrency, (i) => backend.put(ids[i]!, data));
    let bad = 0;
    const getMs = await timed(count, concurrency, async (i) => {
      if (!(await backend.get(ids[i]!)).equals(data)) bad++;
    });
    if (bad) throw new Error(`${bad} chunks read back wrong`);
    await timed(count, 16, (i) => backend.delete(ids[i]!));
    const mbs = (ms: number) => ((count * size) / MiB / (ms / 1000)).toFixed(1).padStart(9);
    const ops = (ms: number) => (count / (ms / 1000)).toFixed(0).padStart(10);
    const label = size >= MiB ? `${size / MiB} MiB` : `${size / 1024} KiB`;
    console.log(
      `${label.padEnd(9)} ${String(concurrency).padStart(4)} ${mbs(putMs)} ${ops(putMs)}  ${mbs(getMs)} ${ops(getMs)}`,
    );
  }
} finally {
  await backend.close();
  await server?.stop();
}
