import { createHash } from 'node:crypto';
import { chmodSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { HeadObjectCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import t from 'tap';
import { readCredentials, removeAccessKey } from '../../src/s3/credentials.js';
import { presignUrl } from '../../src/s3/presign.js';
import { startS3Gateway, TEST_KEYS } from '../fixtures/s3-gateway.js';
import { awsChunkedBody, seedOf, sendRaw, sendSigned, signHeaders } from '../fixtures/s3-sign.js';

// The wire protocol where the SDK would not go: bodies cut short or lying about their digest,
// aws-chunked bodies with good and bad chunk signatures, presigned URLs (good, expired,
// tampered), virtual-host addressing, size caps, names Lilio cannot hold, and keys
// added and removed while the server runs.

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const gw = await startS3Gateway(t, { args: ['--s3-domain', 's3.test'] });
const s3 = gw.client();
const admin = TEST_KEYS.admin;
const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

async function exists(Key: string, Bucket = 'wire'): Promise<boolean> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket, Key }));
    return true;
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
    throw err;
  }
}

function code(body: string): string | undefined {
  return /<Code>([^<]+)<\/Code>/.exec(body)?.[1];
}

t.before(async () => {
  const made = await sendSigned(gw.endpoint, admin, { method: 'PUT', path: '/wire' });
  if (made.status !== 200) throw new Error(`create bucket: ${made.status} ${made.body}`);
});

t.test('a body cut short commits nothing', async (t) => {
  const data = Buffer.alloc(3 * 1024 * 1024, 1);
  const cut = await sendSigned(
    gw.endpoint,
    admin,
    { method: 'PUT', path: '/wire/cut', headers: { 'content-length': String(data.length) } },
    [data.subarray(0, 1024 * 1024), data.subarray(1024 * 1024)],
    2 * 1024 * 1024,
  );
  t.equal(cut.status, 0, 'the client went away');
  // The server notices the cut, aborts the writer and never commits.
  await new Promise((r) => setTimeout(r, 300));
  t.notOk(await exists('cut'));
});

t.test('x-amz-content-sha256 is checked against the body', async (t) => {
  const body = Buffer.from('the real body');
  const lying = await sendSigned(
    gw.endpoint,
    admin,
    {
      method: 'PUT',
      path: '/wire/sha',
      payloadHash: sha256('another body'),
      headers: { 'content-length': String(body.length) },
    },
    [body],
  );
  t.equal(lying.status, 400);
  t.equal(code(lying.body), 'XAmzContentSHA256Mismatch');
  t.notOk(await exists('sha'));
  const honest = await sendSigned(
    gw.endpoint,
    admin,
    { method: 'PUT', path: '/wire/sha', payloadHash: sha256(body), headers: { 'content-length': String(body.length) } },
    [body],
  );
  t.equal(honest.status, 200, honest.body);
  t.equal(honest.headers.etag, `"${createHash('md5').update(body).digest('hex')}"`);
});

t.test('aws-chunked: signed chunks verified, a bad one refused before the commit', async (t) => {
  const data = Buffer.alloc(200_000, 'x');
  const pieces = [data.subarray(0, 65_536), data.subarray(65_536, 131_072), data.subarray(131_072)];
  const chunked = async (key: string, tamper: boolean) => {
    const headers = {
      'content-encoding': 'aws-chunked',
      'x-amz-decoded-content-length': String(data.length),
    };
    const probe = awsChunkedBody(pieces, { signingKey: Buffer.alloc(32), amzDate: '', scope: '', signature: '' });
    const signed = await signHeaders(gw.endpoint, admin, {
      method: 'PUT',
      path: `/wire/${key}`,
      payloadHash: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
      headers: { ...headers, 'content-length': String(probe.length) },
    });
    const body = awsChunkedBody(pieces, seedOf(signed, admin.secret));
    if (tamper) body.writeUInt8(body.readUInt8(body.length - 200) ^ 1, body.length - 200);
    return sendRaw(gw.endpoint, 'PUT', `/wire/${key}`, signed, [body]);
  };
  const good = await chunked('chunked', false);
  t.equal(good.status, 200, good.body);
  t.equal(good.headers.etag, `"${createHash('md5').update(data).digest('hex')}"`);
  const bad = await chunked('chunked-bad', true);
  t.equal(bad.status, 403);
  t.equal(code(bad.body), 'SignatureDoesNotMatch');
  t.notOk(await exists('chunked-bad'));
});

t.test('unsigned payload with a trailing checksum (STREAMING-UNSIGNED-PAYLOAD-TRAILER)', async (t) => {
  const data = Buffer.from('hello trailer');
  const sum = Buffer.alloc(4);
  sum.writeUInt32BE(crc32(data));
  const send = (key: string, value: string) => {
    const body = Buffer.from(`${data.length.toString(16)}\r\n${data}\r\n0\r\nx-amz-checksum-crc32:${value}\r\n\r\n`);
    return sendSigned(
      gw.endpoint,
      admin,
      {
        method: 'PUT',
        path: `/wire/${key}`,
        payloadHash: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
        headers: {
          'content-encoding': 'aws-chunked',
          'x-amz-decoded-content-length': String(data.length),
          'x-amz-trailer': 'x-amz-checksum-crc32',
          'content-length': String(body.length),
        },
      },
      [body],
    );
  };
  const good = await send('trailer', sum.toString('base64'));
  t.equal(good.status, 200, good.body);
  t.equal(good.headers['x-amz-checksum-crc32'], sum.toString('base64'));
  const bad = await send('trailer-bad', 'AAAAAA==');
  t.equal(code(bad.body), 'BadDigest');
  t.notOk(await exists('trailer-bad'));
});

t.test('presigned URLs: GET and PUT work, expired and tampered ones do not', async (t) => {
  const put = presignUrl({
    method: 'PUT',
    url: new URL(`${gw.endpoint}/wire/presigned.txt`),
    accessKeyId: admin.accessKeyId,
    secret: admin.secret,
    expiresSeconds: 300,
  });
  const stored = await fetch(put, { method: 'PUT', body: 'via presigned PUT' });
  t.equal(stored.status, 200, await stored.text());
  const get = presignUrl({
    method: 'GET',
    url: new URL(`${gw.endpoint}/wire/presigned.txt`),
    accessKeyId: admin.accessKeyId,
    secret: admin.secret,
    expiresSeconds: 300,
  });
  t.equal(await (await fetch(get)).text(), 'via presigned PUT');
  const expired = presignUrl({
    method: 'GET',
    url: new URL(`${gw.endpoint}/wire/presigned.txt`),
    accessKeyId: admin.accessKeyId,
    secret: admin.secret,
    expiresSeconds: 60,
    now: Date.now() - 120_000,
  });
  const late = await fetch(expired);
  t.equal(late.status, 403);
  t.match(await late.text(), /<Code>AccessDenied<\/Code><Message>Request has expired/);
  const tampered = new URL(get);
  tampered.pathname = '/wire/other.txt';
  const wrong = await fetch(tampered);
  t.equal(wrong.status, 403);
  t.equal(code(await wrong.text()), 'SignatureDoesNotMatch');
  const anonymous = await fetch(`${gw.endpoint}/wire/presigned.txt`);
  t.equal(anonymous.status, 403);
  t.equal(code(await anonymous.text()), 'AccessDenied');
});

t.test('virtual-host-style addressing: BUCKET.s3.test', async (t) => {
  const host = `wire.s3.test:${gw.port}`;
  const body = Buffer.from('virtual');
  const put = await sendSigned(
    gw.endpoint,
    admin,
    { method: 'PUT', path: '/vhost.txt', host, headers: { 'content-length': String(body.length) } },
    [body],
  );
  t.equal(put.status, 200, put.body);
  const get = await sendSigned(gw.endpoint, admin, { method: 'GET', path: '/vhost.txt', host });
  t.equal(get.body, 'virtual');
  const list = await sendSigned(gw.endpoint, admin, {
    method: 'GET',
    path: '/',
    host,
    query: { 'list-type': '2', prefix: 'vh' },
  });
  t.match(list.body, /<Key>vhost.txt<\/Key>/);
  t.ok(await exists('vhost.txt'), 'the same object, path-style');
});

t.test('sizes and names: caps and what Lilio cannot store', async (t) => {
  const huge = await sendSigned(gw.endpoint, admin, {
    method: 'PUT',
    path: '/wire/huge',
    headers: { 'content-length': String(6 * 1024 ** 3) },
  });
  t.equal(code(huge.body), 'EntityTooLarge', 'refused before any byte is read');
  const dots = await sendSigned(
    gw.endpoint,
    admin,
    { method: 'PUT', path: '/wire/a/../b', headers: { 'content-length': '1' } },
    [Buffer.from('x')],
  );
  t.equal(code(dots.body), 'InvalidArgument');
  t.match(dots.body, /has a &quot;\.\.&quot; segment/);
  const long = await sendSigned(gw.endpoint, admin, {
    method: 'PUT',
    path: `/wire/${'k'.repeat(1100)}`,
    headers: { 'content-length': '0' },
  });
  t.equal(code(long.body), 'KeyTooLongError');
  const marker = await sendSigned(
    gw.endpoint,
    admin,
    { method: 'PUT', path: '/wire/folder/', headers: { 'content-length': '3' } },
    [Buffer.from('abc')],
  );
  t.equal(code(marker.body), 'InvalidArgument');
  t.match(marker.body, /directory marker/);
  const emptyMarker = await sendSigned(gw.endpoint, admin, {
    method: 'PUT',
    path: '/wire/folder/',
    headers: { 'content-length': '0' },
  });
  t.equal(emptyMarker.status, 200, 'an empty "folder/" object is a directory marker');
  const meta = await sendSigned(gw.endpoint, admin, {
    method: 'PUT',
    path: '/wire/meta',
    headers: { 'content-length': '0', 'x-amz-meta-big': 'v'.repeat(2100) },
  });
  t.equal(code(meta.body), 'MetadataTooLarge');

  const tooMany = `<Delete>${'<Object><Key>k</Key></Object>'.repeat(1001)}</Delete>`;
  const batch = await sendSigned(
    gw.endpoint,
    admin,
    { method: 'POST', path: '/wire', query: { delete: '' }, headers: { 'content-length': String(tooMany.length) } },
    [Buffer.from(tooMany)],
  );
  t.equal(code(batch.body), 'MalformedXML');
  const bomb = '<!DOCTYPE d [<!ENTITY a "aaaa">]><Delete><Object><Key>&a;</Key></Object></Delete>';
  const entity = await sendSigned(
    gw.endpoint,
    admin,
    { method: 'POST', path: '/wire', query: { delete: '' }, headers: { 'content-length': String(bomb.length) } },
    [Buffer.from(bomb)],
  );
  t.equal(code(entity.body), 'MalformedXML');
  const big = await sendSigned(gw.endpoint, admin, {
    method: 'POST',
    path: '/wire',
    query: { delete: '' },
    headers: { 'content-length': String(3 * 1024 * 1024) },
  });
  t.equal(code(big.body), 'MaxMessageLengthExceeded');
});

t.test('keys added and removed while the server runs; ls never shows secrets', async (t) => {
  const added = await gw.server.localCli([
    's3',
    'keys',
    'add',
    '--bucket',
    'wire',
    '--read-only',
    '--credentials',
    gw.credentialsFile,
  ]);
  t.equal(added.code, 0, added.stderr);
  const id = /access key id:\s+(\S+)/.exec(added.stdout.toString())![1]!;
  const secret = /secret access key:\s+(\S+)/.exec(added.stdout.toString())![1]!;
  const listed = await gw.server.localCli(['s3', 'keys', 'ls', '--credentials', gw.credentialsFile]);
  t.match(listed.stdout.toString(), new RegExp(`${id}\\s+read-only`));
  t.notOk(listed.stdout.toString().includes(secret), 'no secret in ls');
  t.notOk(listed.stdout.toString().includes(admin.secret));
  const fresh = new S3Client({
    endpoint: gw.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: id, secretAccessKey: secret },
    maxAttempts: 1,
  });
  t.teardown(() => fresh.destroy());
  await new Promise((r) => setTimeout(r, 1100));
  const buckets = await fresh.send(new ListBucketsCommand({}));
  t.same(
    buckets.Buckets?.map((b) => b.Name),
    ['wire'],
    'the new key works without a restart',
  );
  // What `lilio s3 keys rm` runs (one CLI process less on a loaded machine).
  removeAccessKey(gw.credentialsFile, id);
  await new Promise((r) => setTimeout(r, 1100));
  await t.rejects(fresh.send(new ListBucketsCommand({})), { name: 'InvalidAccessKeyId' });
  t.throws(() => removeAccessKey(gw.credentialsFile, id), { code: 'NOT_FOUND' });

  // A credentials file others may read is refused (it holds secrets).
  chmodSync(gw.credentialsFile, 0o644);
  t.throws(() => readCredentials(gw.credentialsFile), { message: /readable by others/ });
  chmodSync(gw.credentialsFile, 0o600);
  t.equal(readCredentials(gw.credentialsFile).length, 3, 'the test keys are back to three');
});
