import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import t from 'tap';
import { runTool, tree } from '../fixtures/s3-clients.js';
import { startS3Gateway, TEST_KEYS } from '../fixtures/s3-gateway.js';

// Debian's awscli (v2), unchanged, against `lilio server --s3-listen` (a file of its own:
// every invocation starts a Python interpreter, so it runs beside the other client tests).

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const AWS = '/usr/bin/aws';
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
