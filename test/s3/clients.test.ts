import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import t from 'tap';
import { startS3Gateway, TEST_KEYS } from '../fixtures/s3-gateway.js';

// The tools people already use, unchanged, against `lilio server --s3-listen`: Debian's
// awscli (v2), s3cmd and rclone; and objects crossing between the S3 API and the lilio CLI.

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const AWS = '/usr/bin/aws';
const S3CMD = '/usr/bin/s3cmd';
const RCLONE = '/usr/bin/rclone';
const MiB = 1024 * 1024;

const gw = await startS3Gateway(t);
const s3 = gw.client();
const key = TEST_KEYS.admin;
const work = mkdtempSync(join(tmpdir(), 'lilio-s3-clients-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
await s3.send(new CreateBucketCommand({ Bucket: 'tools' }));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: work, ...env }, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

function tree(root: string, files: Record<string, Buffer>): void {
  for (const [name, data] of Object.entries(files)) {
    mkdirSync(join(root, name, '..'), { recursive: true });
    writeFileSync(join(root, name), data);
  }
}

const files = {
  'a.txt': Buffer.from('alpha\n'),
  'sub/b.bin': randomBytes(70_000),
  'sub/deeper/c.bin': randomBytes(2 * 1024 * 1024 + 13),
  'with space.txt': Buffer.from('spaced'),
};

t.test(
  'awscli v2: cp both ways, sync twice, ls --recursive, s3api head-object',
  { skip: !existsSync(AWS) },
  async (t) => {
    const config = join(work, 'aws-config');
    const credentials = join(work, 'aws-credentials');
    // awscli's defaults: files from 8 MiB on go multipart, in 8 MiB parts.
    writeFileSync(config, '[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n');
    writeFileSync(
      credentials,
      `[default]\naws_access_key_id = ${key.accessKeyId}\naws_secret_access_key = ${key.secret}\n`,
    );
    const env = {
      AWS_CONFIG_FILE: config,
      AWS_SHARED_CREDENTIALS_FILE: credentials,
      AWS_EC2_METADATA_DISABLED: 'true',
    };
    const aws = (...args: string[]) => run(AWS, ['--endpoint-url', gw.endpoint, ...args], env);

    const local = join(work, 'aws-src');
    tree(local, files);
    const up = await aws('s3', 'cp', join(local, 'sub/deeper/c.bin'), 's3://tools/aws/big.bin');
    t.equal(up.code, 0, up.stderr);
    const down = await aws('s3', 'cp', 's3://tools/aws/big.bin', join(work, 'big.back'));
    t.equal(down.code, 0, down.stderr);
    t.ok(readFileSync(join(work, 'big.back')).equals(files['sub/deeper/c.bin']), 'byte for byte');

    const first = await aws('s3', 'sync', local, 's3://tools/aws/tree');
    t.equal(first.code, 0, first.stderr);
    t.equal(first.stdout.match(/^upload:/gm)?.length, 4, 'four files uploaded');
    const second = await aws('s3', 'sync', local, 's3://tools/aws/tree');
    t.equal(second.code, 0, second.stderr);
    t.equal(second.stdout.trim(), '', 'nothing copied the second time');

    const ls = await aws('s3', 'ls', '--recursive', 's3://tools/aws/');
    t.equal(ls.code, 0, ls.stderr);
    for (const name of [
      'aws/big.bin',
      'aws/tree/a.txt',
      'aws/tree/sub/b.bin',
      'aws/tree/sub/deeper/c.bin',
      'aws/tree/with space.txt',
    ]) {
      t.match(ls.stdout, new RegExp(`\\s${name.replace('.', '\\.')}\\n`), name);
    }

    // 100 MiB: a multipart upload of 13 parts, and a download in ranges.
    if (statfsSync(work).bavail * statfsSync(work).bsize < 1024 * MiB) {
      t.comment('less than 1 GiB free: no 100 MiB copy');
    } else {
      const hundred = join(work, 'hundred.bin');
      const data = randomBytes(100 * MiB);
      writeFileSync(hundred, data);
      const sent = await aws('s3', 'cp', hundred, 's3://tools/aws/hundred.bin');
      t.equal(sent.code, 0, sent.stderr);
      const meta = await s3.send(new HeadObjectCommand({ Bucket: 'tools', Key: 'aws/hundred.bin' }));
      t.equal(meta.ContentLength, 100 * MiB);
      t.match(meta.ETag, /^"[0-9a-f]{32}-13"$/, 'uploaded in 13 parts of 8 MiB');
      rmSync(hundred);
      const fetched = await aws('s3', 'cp', 's3://tools/aws/hundred.bin', hundred);
      t.equal(fetched.code, 0, fetched.stderr);
      t.ok(readFileSync(hundred).equals(data), '100 MiB back byte for byte');
      rmSync(hundred);
    }

    const head = await aws('s3api', 'head-object', '--bucket', 'tools', '--key', 'aws/tree/sub/b.bin');
    t.equal(head.code, 0, head.stderr);
    const parsed = JSON.parse(head.stdout) as { ContentLength: number; ETag: string };
    t.equal(parsed.ContentLength, 70_000);
    t.equal(parsed.ETag, `"${createHash('md5').update(files['sub/b.bin']).digest('hex')}"`);
  },
);

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
  const head = await s3.send(new HeadObjectCommand({ Bucket: 'tools', Key: 'rclone-big/big.bin' }));
  t.match(head.ETag, /-3"$/, 'uploaded in three parts');
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
