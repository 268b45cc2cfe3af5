import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteBucketCorsCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketLocationCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutBucketVersioningCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  type S3Client,
  type S3ServiceException,
} from '@aws-sdk/client-s3';
import t from 'tap';
import { startS3Gateway } from '../fixtures/s3-gateway.js';

// @aws-sdk/client-s3 against a real `lilio server --s3-listen`: every operation the S3 API
// serves, its errors as the SDK reports them, and what a read-only or scoped key may not do.

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const gw = await startS3Gateway(t);
const s3 = gw.client();

const md5 = (data: string | Buffer) => createHash('md5').update(data).digest('hex');
/** Bytes past the 4 KiB inline threshold: stored in chunks. */
const body = (size: number, seed = 1) => Buffer.from(Array.from({ length: size }, (_, i) => (i * 31 + seed) & 0xff));

async function failure(t: { fail(message: string): void }, promise: Promise<unknown>): Promise<S3ServiceException> {
  try {
    await promise;
  } catch (err) {
    return err as S3ServiceException;
  }
  t.fail('expected a failure');
  throw new Error('no failure');
}

async function bytesOf(client: S3Client, Bucket: string, Key: string, extra: object = {}): Promise<Buffer> {
  const got = await client.send(new GetObjectCommand({ Bucket, Key, ...extra }));
  return Buffer.from(await got.Body!.transformToByteArray());
}

t.test('buckets: create, head, location, list, delete', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'photos' }));
  await s3.send(
    new CreateBucketCommand({ Bucket: 'regional', CreateBucketConfiguration: { LocationConstraint: 'eu-west-1' } }),
  );
  const again = await failure(t, s3.send(new CreateBucketCommand({ Bucket: 'photos' })));
  t.equal(again.name, 'BucketAlreadyOwnedByYou');
  t.equal(again.$metadata.httpStatusCode, 409);
  const bad = await failure(t, s3.send(new CreateBucketCommand({ Bucket: 'Bad_Name' })));
  t.equal(bad.name, 'InvalidBucketName');
  await s3.send(new HeadBucketCommand({ Bucket: 'photos' }));
  const missing = await failure(t, s3.send(new HeadBucketCommand({ Bucket: 'nowhere' })));
  t.equal(missing.$metadata.httpStatusCode, 404);
  const location = await s3.send(new GetBucketLocationCommand({ Bucket: 'photos' }));
  t.notOk(location.LocationConstraint, 'us-east-1 is the empty constraint');
  const names = (await s3.send(new ListBucketsCommand({}))).Buckets?.map((b) => b.Name);
  t.same(names, ['photos', 'regional']);

  await s3.send(new PutObjectCommand({ Bucket: 'regional', Key: 'x', Body: 'x' }));
  const notEmpty = await failure(t, s3.send(new DeleteBucketCommand({ Bucket: 'regional' })));
  t.equal(notEmpty.name, 'BucketNotEmpty');
  t.equal(notEmpty.$metadata.httpStatusCode, 409);
  await s3.send(new DeleteObjectCommand({ Bucket: 'regional', Key: 'x' }));
  await s3.send(new DeleteBucketCommand({ Bucket: 'regional' }));
  const gone = await failure(t, s3.send(new ListObjectsV2Command({ Bucket: 'regional' })));
  t.equal(gone.name, 'NoSuchBucket');
});

t.test('put and get: ETag is the MD5, type and user metadata round-trip', async (t) => {
  const data = body(300_000);
  const put = await s3.send(
    new PutObjectCommand({
      Bucket: 'photos',
      Key: 'dir/one.bin',
      Body: data,
      ContentType: 'image/png',
      Metadata: { color: 'blue', 'taken-by': 'ana' },
    }),
  );
  t.equal(put.ETag, `"${md5(data)}"`);
  const got = await s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'dir/one.bin' }));
  t.equal(got.ContentType, 'image/png');
  t.equal(got.ETag, `"${md5(data)}"`);
  t.same(got.Metadata, { color: 'blue', 'taken-by': 'ana' });
  t.equal(got.ContentLength, data.length);
  t.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(data));
  const head = await s3.send(new HeadObjectCommand({ Bucket: 'photos', Key: 'dir/one.bin' }));
  t.equal(head.ContentLength, data.length);
  t.equal(head.ETag, put.ETag);

  // A stream of unknown length to the SDK: it sends it aws-chunked (with a checksum trailer on newer SDKs).
  const streamed = body(200_000, 7);
  const viaStream = await s3.send(
    new PutObjectCommand({
      Bucket: 'photos',
      Key: 'streamed',
      Body: Readable.from([streamed.subarray(0, 70_000), streamed.subarray(70_000)]),
      ContentLength: streamed.length,
    }),
  );
  t.equal(viaStream.ETag, `"${md5(streamed)}"`);
  t.ok((await bytesOf(s3, 'photos', 'streamed')).equals(streamed));

  for (const algorithm of ['CRC32', 'CRC32C', 'SHA1', 'SHA256'] as const) {
    const checked = await s3.send(
      new PutObjectCommand({ Bucket: 'photos', Key: `sum-${algorithm}`, Body: data, ChecksumAlgorithm: algorithm }),
    );
    t.equal(checked.ETag, `"${md5(data)}"`, `${algorithm} verified`);
  }
  const empty = await s3.send(new PutObjectCommand({ Bucket: 'photos', Key: 'empty', Body: '' }));
  t.equal(empty.ETag, `"${md5('')}"`);
  t.equal((await bytesOf(s3, 'photos', 'empty')).length, 0);

  const missing = await failure(t, s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'nope' })));
  t.equal(missing.name, 'NoSuchKey');
  t.equal(missing.$metadata.httpStatusCode, 404);
  const noBucket = await failure(t, s3.send(new GetObjectCommand({ Bucket: 'nobucket', Key: 'x' })));
  t.equal(noBucket.name, 'NoSuchBucket');
});

t.test('Content-MD5 and checksums that do not match store nothing', async (t) => {
  const wrongMd5 = await failure(
    t,
    s3.send(
      new PutObjectCommand({
        Bucket: 'photos',
        Key: 'bad-md5',
        Body: 'hello',
        ContentMD5: createHash('md5').update('other').digest('base64'),
      }),
    ),
  );
  t.equal(wrongMd5.name, 'BadDigest');
  const invalid = await failure(
    t,
    s3.send(new PutObjectCommand({ Bucket: 'photos', Key: 'bad-md5', Body: 'hello', ContentMD5: 'not-base64' })),
  );
  t.equal(invalid.name, 'InvalidDigest');
  const wrongSum = await failure(
    t,
    s3.send(
      new PutObjectCommand({
        Bucket: 'photos',
        Key: 'bad-md5',
        Body: 'hello',
        ChecksumSHA256: createHash('sha256').update('x').digest('base64'),
      }),
    ),
  );
  t.equal(wrongSum.name, 'BadDigest');
  const head = await failure(t, s3.send(new HeadObjectCommand({ Bucket: 'photos', Key: 'bad-md5' })));
  t.equal(head.$metadata.httpStatusCode, 404, 'no object appeared');
});

t.test('ranges, partNumber and response overrides', async (t) => {
  const data = Buffer.from('0123456789');
  await s3.send(new PutObjectCommand({ Bucket: 'photos', Key: 'digits', Body: data }));
  t.equal((await bytesOf(s3, 'photos', 'digits', { Range: 'bytes=2-5' })).toString(), '2345');
  t.equal((await bytesOf(s3, 'photos', 'digits', { Range: 'bytes=-3' })).toString(), '789');
  t.equal((await bytesOf(s3, 'photos', 'digits', { Range: 'bytes=7-' })).toString(), '789');
  const ranged = await s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'digits', Range: 'bytes=8-100' }));
  t.equal(ranged.ContentRange, 'bytes 8-9/10');
  t.equal(ranged.$metadata.httpStatusCode, 206);
  await ranged.Body!.transformToString();
  const outside = await failure(
    t,
    s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'digits', Range: 'bytes=10-' })),
  );
  t.equal(outside.name, 'InvalidRange');
  t.equal(outside.$metadata.httpStatusCode, 416);
  t.equal((await bytesOf(s3, 'photos', 'digits', { PartNumber: 1 })).toString(), '0123456789');
  const part2 = await failure(t, s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'digits', PartNumber: 2 })));
  t.equal(part2.$metadata.httpStatusCode, 416);
  const over = await s3.send(
    new GetObjectCommand({
      Bucket: 'photos',
      Key: 'digits',
      ResponseContentType: 'text/plain',
      ResponseContentDisposition: 'attachment; filename="d.txt"',
      ResponseCacheControl: 'no-cache',
    }),
  );
  t.equal(over.ContentType, 'text/plain');
  t.equal(over.ContentDisposition, 'attachment; filename="d.txt"');
  t.equal(over.CacheControl, 'no-cache');
  await over.Body!.transformToString();
});

t.test('conditional reads and writes', async (t) => {
  const put = await s3.send(new PutObjectCommand({ Bucket: 'photos', Key: 'cond', Body: 'v1' }));
  const etag = put.ETag!;
  t.equal((await bytesOf(s3, 'photos', 'cond', { IfMatch: etag })).toString(), 'v1');
  const wrong = await failure(t, s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'cond', IfMatch: '"abc"' })));
  t.equal(wrong.$metadata.httpStatusCode, 412);
  t.equal(wrong.name, 'PreconditionFailed');
  const same = await failure(t, s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'cond', IfNoneMatch: etag })));
  t.equal(same.$metadata.httpStatusCode, 304);
  const future = new Date(Date.now() + 3600_000);
  const notModified = await failure(
    t,
    s3.send(new HeadObjectCommand({ Bucket: 'photos', Key: 'cond', IfModifiedSince: future })),
  );
  t.equal(notModified.$metadata.httpStatusCode, 304);
  const past = new Date(Date.now() - 3600_000);
  const modified = await failure(
    t,
    s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'cond', IfUnmodifiedSince: past })),
  );
  t.equal(modified.$metadata.httpStatusCode, 412);
  t.equal((await bytesOf(s3, 'photos', 'cond', { IfModifiedSince: past })).toString(), 'v1');

  const exists = await failure(
    t,
    s3.send(new PutObjectCommand({ Bucket: 'photos', Key: 'cond', Body: 'v2', IfNoneMatch: '*' })),
  );
  t.equal(exists.$metadata.httpStatusCode, 412);
  const created = await s3.send(
    new PutObjectCommand({ Bucket: 'photos', Key: 'cond-new', Body: 'n', IfNoneMatch: '*' }),
  );
  t.equal(created.ETag, `"${md5('n')}"`);
  const stale = await failure(
    t,
    s3.send(new PutObjectCommand({ Bucket: 'photos', Key: 'cond', Body: 'v2', IfMatch: '"0123"' })),
  );
  t.equal(stale.$metadata.httpStatusCode, 412);
  await s3.send(new PutObjectCommand({ Bucket: 'photos', Key: 'cond', Body: 'v2', IfMatch: etag }));
  t.equal((await bytesOf(s3, 'photos', 'cond')).toString(), 'v2');
});

t.test('listing: v2 with prefix, delimiter, pages, start-after, owner, url encoding; v1 markers', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'tree' }));
  const keys = ['a.txt', 'b/1.txt', 'b/2.txt', 'b/c/3.txt', 'd e+f.txt', 'z.txt'];
  for (const Key of keys) await s3.send(new PutObjectCommand({ Bucket: 'tree', Key, Body: Key }));
  const all = await s3.send(new ListObjectsV2Command({ Bucket: 'tree' }));
  t.same(
    all.Contents?.map((c) => c.Key),
    keys,
  );
  t.equal(all.KeyCount, keys.length);
  t.equal(all.Contents?.[0]?.ETag, `"${md5('a.txt')}"`);
  t.equal(all.Contents?.[0]?.Size, 5);
  t.notOk(all.Contents?.[0]?.Owner, 'no owner unless asked');
  const level = await s3.send(new ListObjectsV2Command({ Bucket: 'tree', Delimiter: '/' }));
  t.same(
    level.Contents?.map((c) => c.Key),
    ['a.txt', 'd e+f.txt', 'z.txt'],
  );
  t.same(
    level.CommonPrefixes?.map((p) => p.Prefix),
    ['b/'],
  );
  const sub = await s3.send(
    new ListObjectsV2Command({ Bucket: 'tree', Prefix: 'b/', Delimiter: '/', FetchOwner: true }),
  );
  t.same(
    sub.Contents?.map((c) => c.Key),
    ['b/1.txt', 'b/2.txt'],
  );
  t.same(
    sub.CommonPrefixes?.map((p) => p.Prefix),
    ['b/c/'],
  );
  t.ok(sub.Contents?.[0]?.Owner?.ID);

  const paged: string[] = [];
  let token: string | undefined;
  let pages = 0;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: 'tree', MaxKeys: 2, ContinuationToken: token }));
    paged.push(...(page.Contents ?? []).map((c) => c.Key!));
    token = page.NextContinuationToken;
    t.equal(page.IsTruncated, token !== undefined);
    pages++;
  } while (token);
  t.same(paged, keys);
  t.equal(pages, 3);
  const after = await s3.send(new ListObjectsV2Command({ Bucket: 'tree', StartAfter: 'b/2.txt' }));
  t.same(
    after.Contents?.map((c) => c.Key),
    ['b/c/3.txt', 'd e+f.txt', 'z.txt'],
  );
  const encoded = await s3.send(new ListObjectsV2Command({ Bucket: 'tree', Prefix: 'd', EncodingType: 'url' }));
  t.same(encoded.EncodingType, 'url');
  t.same(
    encoded.Contents?.map((c) => decodeURIComponent(c.Key!)),
    ['d e+f.txt'],
    'keys come url-encoded (the SDK leaves decoding to the caller)',
  );
  const badToken = await failure(t, s3.send(new ListObjectsV2Command({ Bucket: 'tree', ContinuationToken: '!!' })));
  t.equal(badToken.name, 'InvalidArgument');

  const v1: string[] = [];
  let marker: string | undefined;
  for (;;) {
    const page = await s3.send(new ListObjectsCommand({ Bucket: 'tree', MaxKeys: 4, Marker: marker }));
    v1.push(...(page.Contents ?? []).map((c) => c.Key!));
    if (!page.IsTruncated) break;
    marker = page.NextMarker ?? page.Contents?.at(-1)?.Key;
  }
  t.same(v1, keys);
});

t.test('delete: idempotent single deletes and a batch, quiet or not', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'trash' }));
  for (const Key of ['k1', 'k2', 'k3', 'k4']) await s3.send(new PutObjectCommand({ Bucket: 'trash', Key, Body: Key }));
  const first = await s3.send(new DeleteObjectCommand({ Bucket: 'trash', Key: 'k1' }));
  t.equal(first.$metadata.httpStatusCode, 204);
  const again = await s3.send(new DeleteObjectCommand({ Bucket: 'trash', Key: 'k1' }));
  t.equal(again.$metadata.httpStatusCode, 204, 'deleting a missing key succeeds');
  const batch = await s3.send(
    new DeleteObjectsCommand({
      Bucket: 'trash',
      Delete: { Objects: [{ Key: 'k2' }, { Key: 'k3' }, { Key: 'never' }] },
    }),
  );
  t.same(batch.Deleted?.map((d) => d.Key).sort(), ['k2', 'k3', 'never']);
  t.notOk(batch.Errors?.length);
  const quiet = await s3.send(
    new DeleteObjectsCommand({
      Bucket: 'trash',
      Delete: { Objects: [{ Key: 'k4' }, { Key: 'bad//key' }], Quiet: true },
    }),
  );
  t.notOk(quiet.Deleted?.length, 'quiet: only errors are reported');
  t.same(
    quiet.Errors?.map((e) => [e.Key, e.Code]),
    [['bad//key', 'InvalidArgument']],
  );
  const left = await s3.send(new ListObjectsV2Command({ Bucket: 'trash' }));
  t.equal(left.KeyCount, 0);
});

t.test('copy: COPY and REPLACE metadata, new chunks, conditions', async (t) => {
  const data = body(150_000, 3);
  await s3.send(
    new PutObjectCommand({
      Bucket: 'photos',
      Key: 'orig',
      Body: data,
      ContentType: 'image/jpeg',
      Metadata: { a: '1' },
    }),
  );
  const copied = await s3.send(new CopyObjectCommand({ Bucket: 'photos', Key: 'copy', CopySource: 'photos/orig' }));
  t.equal(copied.CopyObjectResult?.ETag, `"${md5(data)}"`);
  const head = await s3.send(new HeadObjectCommand({ Bucket: 'photos', Key: 'copy' }));
  t.equal(head.ContentType, 'image/jpeg');
  t.same(head.Metadata, { a: '1' });
  await s3.send(new CreateBucketCommand({ Bucket: 'other' }));
  await s3.send(
    new CopyObjectCommand({
      Bucket: 'other',
      Key: 'with space/replaced',
      CopySource: '/photos/orig',
      MetadataDirective: 'REPLACE',
      ContentType: 'text/plain',
      Metadata: { b: '2' },
    }),
  );
  const replaced = await s3.send(new HeadObjectCommand({ Bucket: 'other', Key: 'with space/replaced' }));
  t.equal(replaced.ContentType, 'text/plain');
  t.same(replaced.Metadata, { b: '2' });
  // The source goes: the copies keep their own chunks.
  await s3.send(new DeleteObjectCommand({ Bucket: 'photos', Key: 'orig' }));
  t.ok((await bytesOf(s3, 'photos', 'copy')).equals(data));
  t.ok((await bytesOf(s3, 'other', 'with space/replaced')).equals(data));

  const self = await failure(
    t,
    s3.send(new CopyObjectCommand({ Bucket: 'photos', Key: 'copy', CopySource: 'photos/copy' })),
  );
  t.equal(self.name, 'InvalidRequest');
  const noSource = await failure(
    t,
    s3.send(new CopyObjectCommand({ Bucket: 'photos', Key: 'x', CopySource: 'photos/orig' })),
  );
  t.equal(noSource.name, 'NoSuchKey');
  const unmet = await failure(
    t,
    s3.send(
      new CopyObjectCommand({ Bucket: 'photos', Key: 'x', CopySource: 'photos/copy', CopySourceIfMatch: '"nope"' }),
    ),
  );
  t.equal(unmet.$metadata.httpStatusCode, 412);
});

t.test('keys: wrong secret, unknown id, skewed clock, read-only, another bucket', async (t) => {
  const wrong = gw.client('admin', { credentials: { accessKeyId: 'LKADMINTESTKEY000001', secretAccessKey: 'wrong' } });
  const bad = await failure(t, wrong.send(new ListBucketsCommand({})));
  t.equal(bad.name, 'SignatureDoesNotMatch');
  t.equal(bad.$metadata.httpStatusCode, 403);
  const unknown = gw.client('admin', { credentials: { accessKeyId: 'LKNOBODY', secretAccessKey: 'x' } });
  t.equal((await failure(t, unknown.send(new ListBucketsCommand({})))).name, 'InvalidAccessKeyId');
  const skewed = gw.client('admin', { systemClockOffset: -20 * 60_000 });
  t.equal((await failure(t, skewed.send(new ListBucketsCommand({})))).name, 'RequestTimeTooSkewed');

  const reader = gw.client('reader');
  t.equal((await bytesOf(reader, 'photos', 'digits')).toString(), '0123456789', 'a read-only key reads');
  const write = await failure(t, reader.send(new PutObjectCommand({ Bucket: 'photos', Key: 'ro', Body: 'x' })));
  t.equal(write.name, 'AccessDenied');
  const del = await failure(t, reader.send(new DeleteObjectCommand({ Bucket: 'photos', Key: 'digits' })));
  t.equal(del.name, 'AccessDenied');

  await s3.send(new CreateBucketCommand({ Bucket: 'scoped' }));
  const scoped = gw.client('scoped');
  await scoped.send(new PutObjectCommand({ Bucket: 'scoped', Key: 'mine', Body: 'x' }));
  const names = (await scoped.send(new ListBucketsCommand({}))).Buckets?.map((b) => b.Name);
  t.same(names, ['scoped'], 'a scoped key lists only its buckets');
  const foreign = await failure(t, scoped.send(new GetObjectCommand({ Bucket: 'photos', Key: 'digits' })));
  t.equal(foreign.name, 'AccessDenied');
  const copyIn = await failure(
    t,
    scoped.send(new CopyObjectCommand({ Bucket: 'scoped', Key: 'stolen', CopySource: 'photos/digits' })),
  );
  t.equal(copyIn.name, 'AccessDenied', 'nor copy out of another bucket');
});

t.test('unsupported features answer NotImplemented', async (t) => {
  const versioning = await failure(
    t,
    s3.send(new PutBucketVersioningCommand({ Bucket: 'photos', VersioningConfiguration: { Status: 'Enabled' } })),
  );
  t.equal(versioning.name, 'NotImplemented');
  t.equal(versioning.$metadata.httpStatusCode, 501);
  const tagging = await failure(
    t,
    s3.send(new PutObjectTaggingCommand({ Bucket: 'photos', Key: 'digits', Tagging: { TagSet: [] } })),
  );
  t.equal(tagging.name, 'NotImplemented');
  const cors = await failure(t, s3.send(new DeleteBucketCorsCommand({ Bucket: 'photos' })));
  t.equal(cors.name, 'NotImplemented', 'a DELETE with a subresource never deletes the bucket');
  const version = await failure(t, s3.send(new GetObjectCommand({ Bucket: 'photos', Key: 'digits', VersionId: 'v1' })));
  t.equal(version.name, 'NotImplemented');
  await s3.send(new HeadBucketCommand({ Bucket: 'photos' }));
});

t.test('metrics: per-operation counts; no secret in metrics or logs', async (t) => {
  const text = await (await fetch(`${gw.server.metricsUrl}/metrics`)).text();
  t.match(text, /lilio_s3_requests_total\{operation="PutObject",status="200"\} \d+/);
  t.match(text, /lilio_s3_requests_total\{operation="ListBuckets",status="403"\} \d+/);
  t.match(text, /lilio_s3_request_duration_seconds_count\{operation="GetObject"\} \d+/);
  t.match(text, /lilio_objects_total\{bucket="photos",operation="put"\}/, 'the engine series are there too');
  for (const secret of ['admin-secret', 'reader-secret', 'scoped-secret']) {
    t.notOk(text.includes(secret), `${secret} not in metrics`);
    t.notOk(gw.server.stderr().includes(secret), `${secret} not in the log`);
  }
});
