import { HttpRequest } from '@smithy/core/transport';
import t from 'tap';
import { decodeAwsChunked } from '../../src/s3/chunked.js';
import type { KeyRing } from '../../src/s3/credentials.js';
import { S3Error } from '../../src/s3/errors.js';
import { BodyDigests } from '../../src/s3/payload.js';
import { presignUrl } from '../../src/s3/presign.js';
import { authenticate, signingKey } from '../../src/s3/sigv4.js';
import { parseS3Query } from '../../src/s3/target.js';
import { el, parseXml, xmlDocument } from '../../src/s3/xml.js';
import { awsChunkedBody, sdkSigner } from '../fixtures/s3-sign.js';

// The signature checks against AWS's published example and the SDK's own signer; the XML
// builder and parser; the checksums against known vectors.

const DOC_KEY = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secret: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };
const keys = {
  lookup: (id: string) =>
    id === DOC_KEY.accessKeyId ? { ...DOC_KEY, buckets: ['*'], readOnly: false, createdAt: 0 } : undefined,
} as unknown as KeyRing;

function fakeRequest(method: string, headers: Record<string, string>) {
  return { method, rawHeaders: Object.entries(headers).flat() } as never;
}

async function collect(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of source) parts.push(p);
  return Buffer.concat(parts);
}

t.test('aws-chunked: the example of the S3 documentation (sigv4-streaming)', async (t) => {
  const headers = {
    host: 's3.amazonaws.com',
    'x-amz-date': '20130524T000000Z',
    'x-amz-storage-class': 'REDUCED_REDUNDANCY',
    authorization:
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9',
    'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
    'content-encoding': 'aws-chunked',
    'x-amz-decoded-content-length': '66560',
    'content-length': '66824',
  };
  const now = Date.UTC(2013, 4, 24, 0, 5);
  const auth = authenticate(fakeRequest('PUT', headers), '/examplebucket/chunkObject.txt', '', new Map(), keys, now);
  t.same(auth.payload, { kind: 'streaming', signed: true, trailer: false });
  const data = Buffer.alloc(66560, 'a');
  const body = awsChunkedBody([data.subarray(0, 65536), data.subarray(65536)], auth.seed);
  t.equal(body.length, 66824, 'the documented encoded length');
  const text = body.toString('latin1');
  t.match(text, /^10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n/);
  t.match(text, /400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n/);
  t.match(text, /0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n$/);

  // Fed in awkward pieces: the decoder must not care where the network splits.
  const pieces = [body.subarray(0, 7), body.subarray(7, 65_600), body.subarray(65_600), Buffer.alloc(0)];
  const decoded = await collect(
    decodeAwsChunked(Readable(pieces), { seed: auth.seed, trailer: false, onTrailer() {} }),
  );
  t.ok(decoded.equals(data));

  const tampered = Buffer.from(body);
  tampered.writeUInt8(tampered.readUInt8(200) ^ 1, 200);
  await t.rejects(
    collect(decodeAwsChunked(Readable([tampered]), { seed: auth.seed, trailer: false, onTrailer() {} })),
    { code: 'SignatureDoesNotMatch' },
  );
  await t.rejects(
    collect(decodeAwsChunked(Readable([body.subarray(0, 66000)]), { seed: auth.seed, trailer: false, onTrailer() {} })),
    { code: 'IncompleteBody' },
  );
  const late = Date.UTC(2013, 4, 24, 0, 16);
  t.throws(
    () => authenticate(fakeRequest('PUT', headers), '/examplebucket/chunkObject.txt', '', new Map(), keys, late),
    {
      code: 'RequestTimeTooSkewed',
    },
  );
  t.throws(() => authenticate(fakeRequest('PUT', headers), '/examplebucket/other.txt', '', new Map(), keys, now), {
    code: 'SignatureDoesNotMatch',
  });
});

function Readable(pieces: Buffer[]): AsyncIterable<Buffer> {
  return (async function* () {
    yield* pieces;
  })();
}

t.test('unsigned trailer form: the checksum comes after the body', async (t) => {
  const body = Buffer.from('5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n');
  const digests = new BodyDigests(
    { kind: 'streaming', signed: false, trailer: true },
    {
      checksum: { algorithm: 'crc32', inTrailer: true },
    },
  );
  for await (const piece of decodeAwsChunked(Readable([body]), {
    trailer: true,
    onTrailer: (name, value) => digests.acceptTrailer(name, value),
  })) {
    digests.update(piece);
  }
  t.same(digests.finish().checksumHeader, ['x-amz-checksum-crc32', 'NhCmhg==']);
  const wrong = new BodyDigests(
    { kind: 'unsigned' },
    { checksum: { algorithm: 'crc32', value: 'AAAAAA==', inTrailer: false } },
  );
  wrong.update(Buffer.from('hello'));
  t.throws(() => wrong.finish(), { code: 'BadDigest' });
  const c = new BodyDigests(
    { kind: 'unsigned' },
    { checksum: { algorithm: 'crc32c', value: '4waSgw==', inTrailer: false } },
  );
  c.update(Buffer.from('123456789'));
  t.same(c.finish().checksumHeader, ['x-amz-checksum-crc32c', '4waSgw=='], 'CRC-32C check value 0xE3069283');
  const check64 = Buffer.from('ae8b14860a799888', 'hex').toString('base64');
  const c64 = new BodyDigests(
    { kind: 'unsigned' },
    { checksum: { algorithm: 'crc64nvme', value: check64, inTrailer: false } },
  );
  c64.update(Buffer.from('1234'));
  c64.update(Buffer.from('56789'));
  t.same(
    c64.finish().checksumHeader,
    ['x-amz-checksum-crc64nvme', check64],
    'CRC-64/NVME check value 0xAE8B14860A799888',
  );
});

t.test('header and presigned signatures agree with the SDK signer', async (t) => {
  const signer = sdkSigner(DOC_KEY);
  const date = new Date();
  const request = new HttpRequest({
    method: 'GET',
    protocol: 'http:',
    hostname: 'localhost',
    port: 9000,
    path: "/bucket/a b/c~d!e'(f)*+&=.txt",
    query: { prefix: 'x y/z', 'list-type': '2', empty: '' },
    headers: { host: 'localhost:9000', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', range: 'bytes=0-1' },
  });
  // What goes on the wire: the SDK escapes the path itself before signing it as is.
  const wirePath = '/bucket/a%20b/c~d%21e%27%28f%29%2A%2B%26%3D.txt';
  request.path = wirePath;
  const signed = await signer.sign(request, { signingDate: date });
  const rawQuery = 'prefix=x%20y%2Fz&list-type=2&empty';
  const auth = authenticate(
    fakeRequest('GET', signed.headers as Record<string, string>),
    wirePath,
    rawQuery,
    parseS3Query(rawQuery),
    keys,
  );
  t.equal(auth.key.accessKeyId, DOC_KEY.accessKeyId);

  // As @aws-sdk/s3-request-presigner does it: UNSIGNED-PAYLOAD, the header neither signed nor hoisted.
  const presigned = await signer.presign(
    new HttpRequest({
      method: 'PUT',
      protocol: 'http:',
      hostname: 'localhost',
      port: 9000,
      path: '/bucket/key',
      headers: { host: 'localhost:9000', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
    }),
    {
      expiresIn: 600,
      signingDate: date,
      unsignableHeaders: new Set(['x-amz-content-sha256']),
      unhoistableHeaders: new Set(['x-amz-content-sha256']),
    },
  );
  const ours = presignUrl({
    method: 'PUT',
    url: new URL('http://localhost:9000/bucket/key'),
    accessKeyId: DOC_KEY.accessKeyId,
    secret: DOC_KEY.secret,
    expiresSeconds: 600,
    now: date.getTime(),
  });
  t.equal(ours.searchParams.get('X-Amz-Signature'), presigned.query?.['X-Amz-Signature'], 'same signature as the SDK');
  const query = ours.search.slice(1);
  const ok = authenticate(
    fakeRequest('PUT', { host: 'localhost:9000' }),
    '/bucket/key',
    query,
    parseS3Query(query),
    keys,
  );
  t.ok(ok.presigned);
  t.throws(
    () =>
      authenticate(
        fakeRequest('PUT', { host: 'localhost:9000' }),
        '/bucket/key',
        query,
        parseS3Query(query),
        keys,
        date.getTime() + 601_000,
      ),
    { code: 'AccessDenied', message: /expired/ },
  );
  t.throws(
    () => authenticate(fakeRequest('GET', { host: 'localhost:9000' }), '/bucket/key', query, parseS3Query(query), keys),
    { code: 'SignatureDoesNotMatch' },
    'the method is signed',
  );
  t.equal(signingKey('s', '20130524', 'us-east-1').length, 32);
});

t.test('xml: escaping builder, strict small parser', async (t) => {
  const doc = xmlDocument(el('R', el('Key', `a<b>&"c'\u0001`), el('N', 3), el('T', true), undefined));
  t.equal(
    doc,
    '<?xml version="1.0" encoding="UTF-8"?>\n<R xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Key>a&lt;b&gt;&amp;&quot;c&apos;\ufffd</Key><N>3</N><T>true</T></R>',
  );
  const parsed = parseXml(
    '<?xml version="1.0"?>\n<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">\n  <Object><Key>a &amp; b&#x41;&#66;</Key></Object>\n  <Object><Key>  </Key></Object><Quiet>true</Quiet><!-- c --></Delete>',
  );
  t.equal(parsed.name, 'Delete');
  const objects = parsed.children.filter((c) => typeof c === 'object');
  t.equal(objects.length, 3);
  t.same((objects[0] as { children: Array<{ children: string[] }> }).children[0]!.children, ['a & bAB']);
  t.same(
    (objects[1] as { children: Array<{ children: string[] }> }).children[0]!.children,
    ['  '],
    'whitespace-only text kept',
  );
  for (const bad of [
    '<!DOCTYPE x [<!ENTITY e "boom">]><a>&e;</a>',
    '<a><b></a>',
    '<a>&unknown;</a>',
    '<a></a><b></b>',
    '<a>',
    `${'<a>'.repeat(40)}${'</a>'.repeat(40)}`,
  ]) {
    t.throws(() => parseXml(bad), { name: 'XmlSyntaxError' }, bad.slice(0, 30));
  }
  t.ok(new S3Error('NoSuchKey', 'x').status === 404);
});
