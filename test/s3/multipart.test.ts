import { createHash } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  type S3Client,
  type S3ServiceException,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import t from 'tap';
import { startS3Gateway, TEST_KEYS } from '../fixtures/s3-gateway.js';
import { awsChunkedBody, seedOf, sendRaw, sendSigned, signHeaders } from '../fixtures/s3-sign.js';

// Multipart uploads over S3 with @aws-sdk/client-s3 against a real `lilio server --s3-listen`:
// the parts become one object byte for byte with S3's ETag, gc collects an aborted upload's parts,
// listings page, and the completion refuses what S3 refuses.

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const gw = await startS3Gateway(t);
const s3 = gw.client();
await s3.send(new CreateBucketCommand({ Bucket: 'mpu' }));

const MiB = 1024 * 1024;
const md5 = (data: Buffer) => createHash('md5').update(data).digest('hex');
/** Deterministic bytes, different for each seed. */
function bytes(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 131 + seed * 7 + (i >> 11)) & 0xff;
  return out;
}
/** S3's multipart ETag, computed here from the parts' bytes. */
function multipartEtag(parts: Buffer[]): string {
  const all = createHash('md5');
  for (const p of parts) all.update(createHash('md5').update(p).digest());
  return `"${all.digest('hex')}-${parts.length}"`;
}

async function failure(t: { fail(message: string): void }, promise: Promise<unknown>): Promise<S3ServiceException> {
  try {
    await promise;
  } catch (err) {
    return err as S3ServiceException;
  }
  t.fail('expected a failure');
  throw new Error('no failure');
}

async function create(client: S3Client, Key: string, extra: object = {}): Promise<string> {
  const made = await client.send(new CreateMultipartUploadCommand({ Bucket: 'mpu', Key, ...extra }));
  return made.UploadId!;
}

async function part(Key: string, UploadId: string, PartNumber: number, Body: Buffer): Promise<string> {
  return (await s3.send(new UploadPartCommand({ Bucket: 'mpu', Key, UploadId, PartNumber, Body }))).ETag!;
}

async function gcNow(): Promise<{ deleted: number }> {
  const gc = await gw.server.localCli(['gc', '--grace', '0', '--queue-only', '--json']);
  if (gc.code !== 0) throw new Error(`lilio gc failed: ${gc.stderr}`);
  return (JSON.parse(gc.stdout.toString()) as { queue: { deleted: number } }).queue;
}

t.test('an aborted upload: its parts are gone, and gc deletes their chunks', async (t) => {
  await gcNow(); // whatever was queued before
  const id = await create(s3, 'aborted.bin');
  await part('aborted.bin', id, 1, bytes(MiB + MiB / 2, 1)); // two 1 MiB-chunks
  await part('aborted.bin', id, 2, bytes(100_000, 2)); // one
  const listed = await s3.send(new ListPartsCommand({ Bucket: 'mpu', Key: 'aborted.bin', UploadId: id }));
  t.same(
    listed.Parts?.map((p) => p.PartNumber),
    [1, 2],
  );
  t.equal((await gcNow()).deleted, 0, 'parts in progress are not garbage');
  const aborted = await s3.send(new AbortMultipartUploadCommand({ Bucket: 'mpu', Key: 'aborted.bin', UploadId: id }));
  t.equal(aborted.$metadata.httpStatusCode, 204);
  const gone = await failure(t, s3.send(new ListPartsCommand({ Bucket: 'mpu', Key: 'aborted.bin', UploadId: id })));
  t.equal(gone.name, 'NoSuchUpload');
  t.equal(gone.$metadata.httpStatusCode, 404);
  const again = await failure(
    t,
    s3.send(new AbortMultipartUploadCommand({ Bucket: 'mpu', Key: 'aborted.bin', UploadId: id })),
  );
  t.equal(again.name, 'NoSuchUpload');
  t.equal((await gcNow()).deleted, 3, "gc deleted the parts' three chunks");
  const head = await failure(t, s3.send(new HeadObjectCommand({ Bucket: 'mpu', Key: 'aborted.bin' })));
  t.equal(head.$metadata.httpStatusCode, 404, 'no object appeared');
});

t.test('5 MiB parts, the last one small: byte for byte, ETag -3, metadata from the create', async (t) => {
  const parts = [bytes(5 * MiB, 1), bytes(5 * MiB, 2), bytes(123_457, 3)];
  const id = await create(s3, 'dir/big.bin', { ContentType: 'video/mp4', Metadata: { camera: 'x100' } });
  // Uploaded out of order, as parallel clients do; part 2 uploaded twice (the second one counts).
  const etags: string[] = [];
  etags[2] = await part('dir/big.bin', id, 3, parts[2]!);
  await part('dir/big.bin', id, 2, bytes(5 * MiB, 9));
  etags[1] = await part('dir/big.bin', id, 2, parts[1]!);
  etags[0] = await part('dir/big.bin', id, 1, parts[0]!);
  t.same(
    etags,
    parts.map((p) => `"${md5(p)}"`),
    'part ETags are the quoted MD5s',
  );
  t.equal(
    (await failure(t, s3.send(new HeadObjectCommand({ Bucket: 'mpu', Key: 'dir/big.bin' })))).$metadata.httpStatusCode,
    404,
    'nothing visible before completion',
  );
  const done = await s3.send(
    new CompleteMultipartUploadCommand({
      Bucket: 'mpu',
      Key: 'dir/big.bin',
      UploadId: id,
      MultipartUpload: { Parts: etags.map((ETag, i) => ({ PartNumber: i + 1, ETag })) },
    }),
  );
  const whole = Buffer.concat(parts);
  t.equal(done.ETag, multipartEtag(parts));
  t.match(done.ETag, /-3"$/);
  t.equal(done.Bucket, 'mpu');
  t.equal(done.Key, 'dir/big.bin');
  t.match(done.Location, /\/mpu\/dir\/big\.bin$/);
  const repeated = await s3.send(
    new CompleteMultipartUploadCommand({
      Bucket: 'mpu',
      Key: 'dir/big.bin',
      UploadId: id,
      MultipartUpload: { Parts: etags.map((ETag, i) => ({ PartNumber: i + 1, ETag })) },
    }),
  );
  t.equal(repeated.ETag, done.ETag, 'a repeated completion (a retry after a lost answer) succeeds');
  const other = await failure(
    t,
    s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: 'mpu',
        Key: 'dir/big.bin',
        UploadId: id,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: etags[0]! }] },
      }),
    ),
  );
  t.equal(other.name, 'NoSuchUpload', 'but not one with other parts');
  const got = await s3.send(new GetObjectCommand({ Bucket: 'mpu', Key: 'dir/big.bin' }));
  t.equal(got.ETag, done.ETag);
  t.equal(got.ContentType, 'video/mp4');
  t.same(got.Metadata, { camera: 'x100' });
  t.equal(got.ContentLength, whole.length);
  t.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(whole), 'S3 reads it byte for byte');
  const ranged = await s3.send(
    new GetObjectCommand({ Bucket: 'mpu', Key: 'dir/big.bin', Range: `bytes=${5 * MiB - 10}-${5 * MiB + 9}` }),
  );
  t.ok(
    Buffer.from(await ranged.Body!.transformToByteArray()).equals(whole.subarray(5 * MiB - 10, 5 * MiB + 10)),
    'a range across a part boundary',
  );
  for (const n of [1, 2, 3]) {
    const one = await s3.send(new GetObjectCommand({ Bucket: 'mpu', Key: 'dir/big.bin', PartNumber: n }));
    t.equal(one.PartsCount, 3, `part ${n}: x-amz-mp-parts-count`);
    t.ok(Buffer.from(await one.Body!.transformToByteArray()).equals(parts[n - 1]!), `part ${n} alone, by partNumber`);
  }
  const past = await failure(t, s3.send(new HeadObjectCommand({ Bucket: 'mpu', Key: 'dir/big.bin', PartNumber: 4 })));
  t.equal(past.$metadata.httpStatusCode, 416, 'a part number past the last: InvalidPartNumber');
  const cli = await gw.server.localCli(['get', 'mpu/dir/big.bin', '-']);
  t.equal(cli.code, 0, cli.stderr);
  t.ok(cli.stdout.equals(whole), '`lilio get` reads it byte for byte');
  const after = await failure(t, s3.send(new ListPartsCommand({ Bucket: 'mpu', Key: 'dir/big.bin', UploadId: id })));
  t.equal(after.name, 'NoSuchUpload', 'a completed upload is gone');
});

t.test('completion refuses parts out of order, a wrong ETag, a small part that is not the last', async (t) => {
  const key = 'refused.bin';
  const id = await create(s3, key);
  const big = bytes(5 * MiB, 4);
  const e1 = await part(key, id, 1, big);
  const e2 = await part(key, id, 2, bytes(1000, 5));
  const e3 = await part(key, id, 3, bytes(1000, 6));
  const complete = (Parts: Array<{ PartNumber: number; ETag: string }>, extra: object = {}) =>
    s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: 'mpu',
        Key: key,
        UploadId: id,
        MultipartUpload: { Parts },
        ...extra,
      }),
    );
  const order = await failure(
    t,
    complete([
      { PartNumber: 2, ETag: e2 },
      { PartNumber: 1, ETag: e1 },
    ]),
  );
  t.equal(order.name, 'InvalidPartOrder');
  t.equal(order.$metadata.httpStatusCode, 400);
  const twice = await failure(
    t,
    complete([
      { PartNumber: 1, ETag: e1 },
      { PartNumber: 1, ETag: e1 },
    ]),
  );
  t.equal(twice.name, 'InvalidPartOrder', 'a part listed twice is out of order');
  const wrong = await failure(
    t,
    complete([
      { PartNumber: 1, ETag: e1 },
      { PartNumber: 2, ETag: e3 },
    ]),
  );
  t.equal(wrong.name, 'InvalidPart');
  t.equal(wrong.$metadata.httpStatusCode, 400);
  const never = await failure(
    t,
    complete([
      { PartNumber: 1, ETag: e1 },
      { PartNumber: 7, ETag: e3 },
    ]),
  );
  t.equal(never.name, 'InvalidPart', 'a part never uploaded');
  const small = await failure(
    t,
    complete([
      { PartNumber: 2, ETag: e2 },
      { PartNumber: 3, ETag: e3 },
    ]),
  );
  t.equal(small.name, 'EntityTooSmall');
  t.equal(small.$metadata.httpStatusCode, 400);
  await failure(t, s3.send(new HeadObjectCommand({ Bucket: 'mpu', Key: key })));

  // If-None-Match: * on an existing key: refused, and the upload stays for a completion without it.
  await s3.send(new PutObjectCommand({ Bucket: 'mpu', Key: key, Body: 'there' }));
  const exists = await failure(
    t,
    complete(
      [
        { PartNumber: 1, ETag: e1 },
        { PartNumber: 3, ETag: e3 },
      ],
      { IfNoneMatch: '*' },
    ),
  );
  t.equal(exists.name, 'PreconditionFailed');
  t.equal(exists.$metadata.httpStatusCode, 412);
  // Parts 1 and 3 (skipping 2) are a valid completion: gaps are allowed.
  const done = await complete([
    { PartNumber: 1, ETag: e1.replace(/"/g, '') },
    { PartNumber: 3, ETag: e3 },
  ]);
  const got = await s3.send(new GetObjectCommand({ Bucket: 'mpu', Key: key }));
  t.equal(got.ETag, done.ETag);
  t.ok(
    Buffer.from(await got.Body!.transformToByteArray()).equals(Buffer.concat([big, bytes(1000, 6)])),
    'parts 1 and 3, byte for byte',
  );
});

t.test('UploadPart: checks before recording; bad ids and foreign uploads are NoSuchUpload', async (t) => {
  const key = 'checked.bin';
  const id = await create(s3, key);
  const data = bytes(70_000, 7);
  const bad = await failure(
    t,
    s3.send(
      new UploadPartCommand({
        Bucket: 'mpu',
        Key: key,
        UploadId: id,
        PartNumber: 1,
        Body: data,
        ContentMD5: createHash('md5').update('other').digest('base64'),
      }),
    ),
  );
  t.equal(bad.name, 'BadDigest');
  const badSum = await failure(
    t,
    s3.send(
      new UploadPartCommand({
        Bucket: 'mpu',
        Key: key,
        UploadId: id,
        PartNumber: 1,
        Body: data,
        ChecksumSHA256: createHash('sha256').update('x').digest('base64'),
      }),
    ),
  );
  t.equal(badSum.name, 'BadDigest');
  const none = await s3.send(new ListPartsCommand({ Bucket: 'mpu', Key: key, UploadId: id }));
  t.same(none.Parts ?? [], [], 'no part was recorded');
  const good = await s3.send(
    new UploadPartCommand({
      Bucket: 'mpu',
      Key: key,
      UploadId: id,
      PartNumber: 1,
      Body: data,
      ContentMD5: createHash('md5').update(data).digest('base64'),
      ChecksumAlgorithm: 'CRC32C',
    }),
  );
  t.equal(good.ETag, `"${md5(data)}"`);
  t.ok(good.ChecksumCRC32C, 'the checksum is echoed');

  const unknown = id.slice(0, -1) + (id.endsWith('0') ? '1' : '0');
  for (const UploadId of ['nope', '../../x', unknown]) {
    const err = await failure(
      t,
      s3.send(new UploadPartCommand({ Bucket: 'mpu', Key: key, UploadId, PartNumber: 1, Body: 'x' })),
    );
    t.equal(err.name, 'NoSuchUpload', `upload id ${UploadId}`);
  }
  const otherKey = await failure(
    t,
    s3.send(new UploadPartCommand({ Bucket: 'mpu', Key: 'other.bin', UploadId: id, PartNumber: 1, Body: 'x' })),
  );
  t.equal(otherKey.name, 'NoSuchUpload', "an upload of another key is not this key's");
  for (const PartNumber of [0, 10_001]) {
    const err = await failure(
      t,
      s3.send(new UploadPartCommand({ Bucket: 'mpu', Key: key, UploadId: id, PartNumber, Body: 'x' })),
    );
    t.equal(err.name, 'InvalidArgument', `part number ${PartNumber}`);
  }

  // A read-only key lists but cannot create, upload, complete or abort; a key for another bucket reaches nothing.
  const reader = gw.client('reader');
  const listed = await reader.send(new ListPartsCommand({ Bucket: 'mpu', Key: key, UploadId: id }));
  t.equal(listed.Parts?.length, 1, 'a read-only key lists parts');
  t.equal((await failure(t, create(reader, 'ro.bin'))).name, 'AccessDenied');
  const roPart = await failure(
    t,
    reader.send(new UploadPartCommand({ Bucket: 'mpu', Key: key, UploadId: id, PartNumber: 2, Body: 'x' })),
  );
  t.equal(roPart.name, 'AccessDenied');
  const roComplete = await failure(
    t,
    reader.send(
      new CompleteMultipartUploadCommand({
        Bucket: 'mpu',
        Key: key,
        UploadId: id,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: good.ETag! }] },
      }),
    ),
  );
  t.equal(roComplete.name, 'AccessDenied');
  const roAbort = await failure(
    t,
    reader.send(new AbortMultipartUploadCommand({ Bucket: 'mpu', Key: key, UploadId: id })),
  );
  t.equal(roAbort.name, 'AccessDenied');
  const scoped = gw.client('scoped');
  t.equal((await failure(t, create(scoped, 'x.bin'))).name, 'AccessDenied');
  const scopedList = await failure(t, scoped.send(new ListMultipartUploadsCommand({ Bucket: 'mpu' })));
  t.equal(scopedList.name, 'AccessDenied');
  await s3.send(new AbortMultipartUploadCommand({ Bucket: 'mpu', Key: key, UploadId: id }));
});

t.test('ListParts and ListMultipartUploads page', async (t) => {
  const id = await create(s3, 'paged/parts.bin');
  for (let n = 1; n <= 5; n++) await part('paged/parts.bin', id, n, bytes(10 + n, n));
  const seen: number[] = [];
  let marker: string | undefined;
  let pages = 0;
  for (;;) {
    const page = await s3.send(
      new ListPartsCommand({
        Bucket: 'mpu',
        Key: 'paged/parts.bin',
        UploadId: id,
        MaxParts: 2,
        ...(marker ? { PartNumberMarker: marker } : {}),
      }),
    );
    pages++;
    for (const p of page.Parts ?? []) {
      seen.push(p.PartNumber!);
      t.equal(p.Size, 10 + p.PartNumber!);
      t.equal(p.ETag, `"${md5(bytes(10 + p.PartNumber!, p.PartNumber!))}"`);
    }
    if (!page.IsTruncated) break;
    marker = page.NextPartNumberMarker;
    if (pages > 5) break;
  }
  t.same(seen, [1, 2, 3, 4, 5]);
  t.equal(pages, 3, 'pages of 2, 2, 1');

  // Two uploads of one key (listed oldest first), one of another, one elsewhere.
  const ids = [id, await create(s3, 'paged/x.bin'), await create(s3, 'paged/x.bin'), await create(s3, 'top.bin')];
  const keys: string[] = [];
  const uploadIds: string[] = [];
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  pages = 0;
  for (;;) {
    const page = await s3.send(
      new ListMultipartUploadsCommand({
        Bucket: 'mpu',
        Prefix: 'paged/',
        MaxUploads: 2,
        ...(keyMarker ? { KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker } : {}),
      }),
    );
    pages++;
    for (const u of page.Uploads ?? []) {
      keys.push(u.Key!);
      uploadIds.push(u.UploadId!);
      t.ok(u.Initiated instanceof Date);
    }
    if (!page.IsTruncated) break;
    keyMarker = page.NextKeyMarker;
    uploadIdMarker = page.NextUploadIdMarker;
    if (pages > 5) break;
  }
  t.same(keys, ['paged/parts.bin', 'paged/x.bin', 'paged/x.bin']);
  t.same(uploadIds, ids.slice(0, 3), 'each upload once, in order');
  t.equal(pages, 2);

  const grouped = await s3.send(new ListMultipartUploadsCommand({ Bucket: 'mpu', Delimiter: '/' }));
  t.same(
    grouped.CommonPrefixes?.map((p) => p.Prefix),
    ['paged/'],
  );
  t.same(
    grouped.Uploads?.map((u) => u.Key),
    ['top.bin'],
  );
  const missing = await failure(t, s3.send(new ListMultipartUploadsCommand({ Bucket: 'nobucket' })));
  t.equal(missing.name, 'NoSuchBucket');
  for (const [i, upload] of ids.entries()) {
    const Key = i === 0 ? 'paged/parts.bin' : i === 3 ? 'top.bin' : 'paged/x.bin';
    await s3.send(new AbortMultipartUploadCommand({ Bucket: 'mpu', Key, UploadId: upload }));
  }
  const empty = await s3.send(new ListMultipartUploadsCommand({ Bucket: 'mpu' }));
  t.same(empty.Uploads ?? [], [], 'nothing left in progress');
});

t.test('UploadPartCopy: whole objects and ranges become parts', async (t) => {
  const source = bytes(6 * MiB + 5, 11);
  await s3.send(new PutObjectCommand({ Bucket: 'mpu', Key: 'copy/source.bin', Body: source }));
  const key = 'copy/target.bin';
  const id = await create(s3, key);
  const first = await s3.send(
    new UploadPartCopyCommand({
      Bucket: 'mpu',
      Key: key,
      UploadId: id,
      PartNumber: 1,
      CopySource: 'mpu/copy/source.bin',
      CopySourceRange: `bytes=0-${5 * MiB - 1}`,
    }),
  );
  t.equal(first.CopyPartResult?.ETag, `"${md5(source.subarray(0, 5 * MiB))}"`);
  t.ok(first.CopyPartResult?.LastModified instanceof Date);
  const second = await s3.send(
    new UploadPartCopyCommand({
      Bucket: 'mpu',
      Key: key,
      UploadId: id,
      PartNumber: 2,
      CopySource: '/mpu/copy/source.bin',
    }),
  );
  const outside = await failure(
    t,
    s3.send(
      new UploadPartCopyCommand({
        Bucket: 'mpu',
        Key: key,
        UploadId: id,
        PartNumber: 3,
        CopySource: 'mpu/copy/source.bin',
        CopySourceRange: `bytes=0-${source.length}`,
      }),
    ),
  );
  t.equal(outside.name, 'InvalidArgument', 'a range past the source');
  const unmet = await failure(
    t,
    s3.send(
      new UploadPartCopyCommand({
        Bucket: 'mpu',
        Key: key,
        UploadId: id,
        PartNumber: 3,
        CopySource: 'mpu/copy/source.bin',
        CopySourceIfMatch: '"0123"',
      }),
    ),
  );
  t.equal(unmet.name, 'PreconditionFailed');
  const noSource = await failure(
    t,
    s3.send(
      new UploadPartCopyCommand({ Bucket: 'mpu', Key: key, UploadId: id, PartNumber: 3, CopySource: 'mpu/copy/none' }),
    ),
  );
  t.equal(noSource.name, 'NoSuchKey');
  const done = await s3.send(
    new CompleteMultipartUploadCommand({
      Bucket: 'mpu',
      Key: key,
      UploadId: id,
      MultipartUpload: {
        Parts: [
          { PartNumber: 1, ETag: first.CopyPartResult!.ETag! },
          { PartNumber: 2, ETag: second.CopyPartResult!.ETag! },
        ],
      },
    }),
  );
  t.equal(done.ETag, multipartEtag([source.subarray(0, 5 * MiB), source]));
  const got = await s3.send(new GetObjectCommand({ Bucket: 'mpu', Key: key }));
  t.ok(
    Buffer.from(await got.Body!.transformToByteArray()).equals(Buffer.concat([source.subarray(0, 5 * MiB), source])),
    'byte for byte',
  );
});

t.test('on the wire: a cut part, signed aws-chunked parts, a malformed completion', async (t) => {
  const key = 'wire.bin';
  const id = await create(s3, key);
  const path = `/mpu/${key}`;
  const partQuery = (n: number) => ({ partNumber: String(n), uploadId: id });
  const data = bytes(3 * MiB, 21);
  const cut = await sendSigned(
    gw.endpoint,
    TEST_KEYS.admin,
    { method: 'PUT', path, query: partQuery(1), headers: { 'content-length': String(data.length) } },
    [data.subarray(0, MiB), data.subarray(MiB)],
    2 * MiB,
  );
  t.equal(cut.status, 0, 'the client went away mid-part');
  await new Promise((r) => setTimeout(r, 300));
  const afterCut = await s3.send(new ListPartsCommand({ Bucket: 'mpu', Key: key, UploadId: id }));
  t.same(afterCut.Parts ?? [], [], 'a part cut short is not recorded');

  const pieces = [data.subarray(0, 65_536), data.subarray(65_536, 2 * MiB), data.subarray(2 * MiB)];
  const chunked = async (n: number, tamper: boolean) => {
    const headers = { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(data.length) };
    const probe = awsChunkedBody(pieces, { signingKey: Buffer.alloc(32), amzDate: '', scope: '', signature: '' });
    const req = {
      method: 'PUT',
      path,
      query: partQuery(n),
      payloadHash: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
      headers: { ...headers, 'content-length': String(probe.length) },
    };
    const signed = await signHeaders(gw.endpoint, TEST_KEYS.admin, req);
    const body = awsChunkedBody(pieces, seedOf(signed, TEST_KEYS.admin.secret));
    if (tamper) body.writeUInt8(body.readUInt8(body.length - 200) ^ 1, body.length - 200);
    return sendRaw(gw.endpoint, 'PUT', `${path}?partNumber=${n}&uploadId=${id}`, signed, [body]);
  };
  const good = await chunked(1, false);
  t.equal(good.status, 200, good.body);
  t.equal(good.headers.etag, `"${md5(data)}"`);
  const bad = await chunked(2, true);
  t.equal(bad.status, 403);
  t.match(bad.body, /<Code>SignatureDoesNotMatch<\/Code>/);
  const listed = await s3.send(new ListPartsCommand({ Bucket: 'mpu', Key: key, UploadId: id }));
  t.same(
    listed.Parts?.map((p) => p.PartNumber),
    [1],
    'only the part whose every chunk signature held',
  );

  const complete = (text: string) =>
    sendSigned(
      gw.endpoint,
      TEST_KEYS.admin,
      { method: 'POST', path, query: { uploadId: id }, headers: { 'content-length': String(Buffer.byteLength(text)) } },
      [Buffer.from(text)],
    );
  for (const text of [
    '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>',
    '<Other><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></Other>',
    '<CompleteMultipartUpload></CompleteMultipartUpload>',
    '<CompleteMultipartUpload><Part><PartNumber>1.5</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>',
  ]) {
    const refused = await complete(text);
    t.equal(refused.status, 400, text);
    t.match(refused.body, /<Code>MalformedXML<\/Code>/);
  }
  const done = await complete(
    `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;${md5(data)}&quot;</ETag></Part></CompleteMultipartUpload>`,
  );
  t.equal(done.status, 200, done.body);
  t.match(done.body, /<ETag>&quot;[0-9a-f]{32}-1&quot;<\/ETag>/);
  const got = await s3.send(new GetObjectCommand({ Bucket: 'mpu', Key: key }));
  t.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(data));
});

t.test('metrics count multipart operations', async (t) => {
  const text = await (await fetch(`${gw.server.metricsUrl}/metrics`)).text();
  for (const operation of [
    'CreateMultipartUpload',
    'UploadPart',
    'UploadPartCopy',
    'CompleteMultipartUpload',
    'AbortMultipartUpload',
    'ListParts',
    'ListMultipartUploads',
  ]) {
    t.match(text, new RegExp(`lilio_s3_requests_total\\{operation="${operation}",status="20[04]"\\} [1-9]`), operation);
  }
  t.match(text, /lilio_s3_requests_total\{operation="CompleteMultipartUpload",status="400"\} [1-9]/);
});
