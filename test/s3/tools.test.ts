import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import t from 'tap';
import { runTool, tree } from '../fixtures/s3-clients.js';
import { startS3Gateway, TEST_KEYS } from '../fixtures/s3-gateway.js';

// s3cmd and rclone, unchanged, against `lilio server --s3-listen`, and objects crossing
// between the S3 API and the lilio CLI (awscli: awscli.test.ts).

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const S3CMD = '/usr/bin/s3cmd';
const RCLONE = '/usr/bin/rclone';
const MiB = 1024 * 1024;

const gw = await startS3Gateway(t);
const s3 = gw.client();
const key = TEST_KEYS.admin;
const work = mkdtempSync(join(tmpdir(), 'lilio-s3-clients-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
await s3.send(new CreateBucketCommand({ Bucket: 'tools' }));

const run = (file: string, args: string[], env: Record<string, string> = {}) => runTool(file, args, work, env);

const files = {
  'a.txt': Buffer.from('alpha\n'),
  'sub/b.bin': randomBytes(70_000),
  'sub/deeper/c.bin': randomBytes(2 * 1024 * 1024 + 13),
  'with space.txt': Buffer.from('spaced'),
};

t.test('s3cmd: put, get, ls, del', { skip: !existsSync(S3CMD) }, async (t) => {
  const config = join(work, 's3cfg');
  const host = new URL(gw.endpoint).host;
  writeFileSync(
    config,
    [
      '[default]',
      `access_key = ${key.accessKeyId}`,
      `secret_key = ${key.secret}`,
      `host_base = ${host}`,
      `host_bucket = ${host}`,
      'use_https = False',
      'signature_v2 = False',
      'bucket_location = us-east-1',
      '',
    ].join('\n'),
  );
  const s3cmd = (...args: string[]) => run(S3CMD, ['-c', config, '--multipart-chunk-size-mb=5', ...args]);
  const source = join(work, 's3cmd.bin');
  // Three parts: 5 + 5 + 2 MiB.
  const data = randomBytes(12 * MiB);
  writeFileSync(source, data);
  const put = await s3cmd('put', source, 's3://tools/s3cmd/file.bin');
  t.equal(put.code, 0, put.stderr);
  const back = join(work, 's3cmd.back');
  const get = await s3cmd('get', '--force', 's3://tools/s3cmd/file.bin', back);
  t.equal(get.code, 0, get.stderr);
  t.ok(readFileSync(back).equals(data));
  const ls = await s3cmd('ls', 's3://tools/s3cmd/');
  t.equal(ls.code, 0, ls.stderr);
  t.match(ls.stdout, new RegExp(`${12 * MiB}\\s+s3://tools/s3cmd/file\\.bin`));
  const head = await s3.send(new HeadObjectCommand({ Bucket: 'tools', Key: 's3cmd/file.bin' }));
  t.match(head.ETag, /-3"$/, 'put in three parts');
  const del = await s3cmd('del', 's3://tools/s3cmd/file.bin');
  t.equal(del.code, 0, del.stderr);
  await t.rejects(s3.send(new HeadObjectCommand({ Bucket: 'tools', Key: 's3cmd/file.bin' })));
});

t.test('rclone: copy, check, lsf', { skip: !existsSync(RCLONE) }, async (t) => {
  const env = {
    RCLONE_CONFIG: join(work, 'rclone.conf'),
    RCLONE_CONFIG_LIL_TYPE: 's3',
    RCLONE_CONFIG_LIL_PROVIDER: 'Other',
    RCLONE_CONFIG_LIL_ACCESS_KEY_ID: key.accessKeyId,
    RCLONE_CONFIG_LIL_SECRET_ACCESS_KEY: key.secret,
    RCLONE_CONFIG_LIL_ENDPOINT: gw.endpoint,
    RCLONE_CONFIG_LIL_REGION: 'us-east-1',
    RCLONE_CONFIG_LIL_FORCE_PATH_STYLE: 'true',
  };
  const rclone = (...args: string[]) => run(RCLONE, [...args, '--retries', '1', '--low-level-retries', '1'], env);
  const local = join(work, 'rclone-src');
  tree(local, files);
  const copy = await rclone('copy', local, 'lil:tools/rclone');
  t.equal(copy.code, 0, copy.stderr);
  const check = await rclone('check', local, 'lil:tools/rclone');
  t.equal(check.code, 0, check.stderr);
  t.match(check.stderr, /0 differences found/);
  t.match(check.stderr, /4 matching files/);
  const lsf = await rclone('lsf', '-R', '--files-only', 'lil:tools/rclone');
  t.same(lsf.stdout.trim().split('\n').sort(), Object.keys(files).sort());

  // Above the upload cutoff: multipart, in 5 MiB chunks (11 MiB: three parts).
  const big = join(work, 'rclone-big');
  tree(big, { 'big.bin': randomBytes(11 * MiB) });
  const multipart = ['--s3-upload-cutoff', '5M', '--s3-chunk-size', '5M'];
  const copyBig = await rclone('copy', big, 'lil:tools/rclone-big', ...multipart);
  t.equal(copyBig.code, 0, copyBig.stderr);
  const bigHead = await s3.send(new HeadObjectCommand({ Bucket: 'tools', Key: 'rclone-big/big.bin' }));
  t.match(bigHead.ETag, /-3"$/, 'uploaded in three parts');
  const checkBig = await rclone('check', big, 'lil:tools/rclone-big', '--download');
  t.equal(checkBig.code, 0, checkBig.stderr);
  t.match(checkBig.stderr, /0 differences found/);
});

t.test('across paths: S3 PUT read by `lilio get`, `lilio put` read over S3', async (t) => {
  const data = randomBytes(1_500_000);
  await s3.send(
    new PutObjectCommand({ Bucket: 'tools', Key: 'cross/from-s3.bin', Body: data, Metadata: { origin: 's3' } }),
  );
  const got = await gw.server.localCli(['get', 'tools/cross/from-s3.bin', '-']);
  t.equal(got.code, 0, got.stderr);
  t.ok(got.stdout.equals(data), 'the CLI reads the S3 object byte for byte');
  const stat = await gw.server.localCli(['stat', 'tools/cross/from-s3.bin']);
  t.match(stat.stdout.toString(), /user\.origin/, 'x-amz-meta-origin is the xattr user.origin');

  const file = join(work, 'from-cli.bin');
  const cliData = randomBytes(900_000);
  writeFileSync(file, cliData);
  const put = await gw.server.localCli(['put', file, 'tools/cross/from-cli.bin']);
  t.equal(put.code, 0, put.stderr);
  const over = await s3.send(new GetObjectCommand({ Bucket: 'tools', Key: 'cross/from-cli.bin' }));
  t.ok(Buffer.from(await over.Body!.transformToByteArray()).equals(cliData), 'S3 reads the CLI object byte for byte');
  t.notMatch(over.ETag, /^"[0-9a-f]{32}"$/, 'no MD5 was computed: the ETag must not look like one');
  const again = await s3.send(new HeadObjectCommand({ Bucket: 'tools', Key: 'cross/from-cli.bin' }));
  t.equal(again.ETag, over.ETag, 'and it is stable');
});
