import { connect } from 'node:net';
import t, { type Test } from 'tap';
import { pattern } from '../fixtures/engine.js';
import { rawRequest } from '../fixtures/raw-http.js';
import { startServer } from '../fixtures/server.js';

// The real `lilio server` process on loopback: every route, auth, ranges, listings, and what
// malformed requests get back. One server for the whole file keeps it quick.

const server = await startServer(t);
const { url, token } = server;
const api = server.fetch;

async function errorOf(t: Test, response: Response): Promise<{ code: string; message: string }> {
  t.match(response.headers.get('content-type') ?? '', /application\/json/, 'error bodies are JSON');
  const body = (await response.json()) as { error: { code: string; message: string } };
  return body.error;
}

async function put(path: string, body: Buffer, headers: Record<string, string> = {}): Promise<Response> {
  return api(path, { method: 'PUT', body, headers });
}

t.test('auth: every route but /health needs a valid bearer token', async (t) => {
  const health = await fetch(`${url}/health`);
  t.equal(health.status, 200);
  t.same(await health.json(), { status: 'ok' });
  for (const [what, headers] of [
    ['no token', {}],
    ['a wrong token', { authorization: 'Bearer not-the-token-at-all-1234' }],
    ['a truncated token', { authorization: `Bearer ${token.slice(0, -1)}` }],
    ['another scheme', { authorization: `Basic ${token}` }],
    ['the token without a scheme', { authorization: token }],
  ] as Array<[string, Record<string, string>]>) {
    for (const path of ['/', '/photos', '/photos/k', '/admin/stats', '/%ZZ']) {
      const response = await fetch(`${url}${path}`, { headers });
      t.equal(response.status, 401, `${what}: ${path}`);
      t.equal(response.headers.get('www-authenticate'), 'Bearer realm="lilio"');
      t.equal((await errorOf(t, response)).code, 'UNAUTHORIZED');
    }
  }
  const refusedPut = await fetch(`${url}/photos`, { method: 'PUT' });
  t.equal(refusedPut.status, 401, 'no bucket is created without a token');
  t.equal(
    (await fetch(`${url}/`, { headers: { authorization: `bearer ${token}` } })).status,
    200,
    'scheme is case-insensitive',
  );
  // The second token of the file works too.
  t.equal((await api('/')).status, 200);
});

t.test('buckets: create, list, head, info, delete', async (t) => {
  const created = await api('/photos', { method: 'PUT' });
  t.equal(created.status, 201);
  t.match(await created.json(), { name: 'photos', encrypted: false, chunkSize: 1024 * 1024 });
  const again = await api('/photos', { method: 'PUT' });
  t.equal(again.status, 409);
  t.equal((await errorOf(t, again)).code, 'EXISTS');

  const secret = await api('/secret?encrypt=true&chunkSize=64KiB', { method: 'PUT' });
  t.equal(secret.status, 201);
  t.match(await secret.json(), { name: 'secret', encrypted: true, chunkSize: 65536 });
  const viaHeaders = await api('/small', {
    method: 'PUT',
    headers: { 'x-lilio-encrypt': 'false', 'x-lilio-chunk-size': '65536' },
  });
  t.match(await viaHeaders.json(), { name: 'small', encrypted: false, chunkSize: 65536 });

  const list = await api('/');
  t.same(
    ((await list.json()) as { buckets: Array<{ name: string }> }).buckets.map((b) => b.name),
    ['photos', 'secret', 'small'],
  );
  const head = await api('/secret', { method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal(head.headers.get('x-lilio-encrypted'), 'true');
  t.equal(head.headers.get('x-lilio-chunk-size'), '65536');
  t.equal((await api('/nosuch', { method: 'HEAD' })).status, 404);

  for (const [path, code] of [
    ['/Bad_Name', 'INVALID'],
    ['/ab', 'INVALID'],
    ['/192.168.1.1', 'INVALID'],
    ['/health.x', undefined],
  ] as Array<[string, string | undefined]>) {
    const response = await api(path, { method: 'PUT' });
    if (code) {
      t.equal(response.status, 400, path);
      t.equal((await errorOf(t, response)).code, code, path);
    } else t.equal(response.status, 201, `${path} is a fine name`);
  }
  const conflicting = await api('/other?chunkSize=64KiB', { method: 'PUT', headers: { 'x-lilio-chunk-size': '1MiB' } });
  t.equal(conflicting.status, 400, 'query and header disagree');
  const badSize = await api('/other?chunkSize=lots', { method: 'PUT' });
  t.equal(badSize.status, 400);
  const tooSmall = await api('/other?chunkSize=1KiB', { method: 'PUT' });
  t.equal(tooSmall.status, 400);
  t.match((await errorOf(t, tooSmall)).message, /out of range/);
  const withBody = await api('/other', { method: 'PUT', body: 'config?' });
  t.equal(withBody.status, 400, 'bucket PUT takes no body');

  const info = await api('/secret?info');
  t.match(await info.json(), { name: 'secret', encrypted: true, objects: 0, bytes: 0 });
  t.equal((await api('/health.x', { method: 'DELETE' })).status, 204);
  const missing = await api('/health.x', { method: 'DELETE' });
  t.equal(missing.status, 404);
  t.equal((await errorOf(t, missing)).code, 'NOT_FOUND');
});

t.test('objects round-trip exactly: 0 B, 1 B, multi-chunk, plain and encrypted', async (t) => {
  const cases: Array<[string, Buffer]> = [
    ['photos/empty', Buffer.alloc(0)],
    ['photos/one', Buffer.from([0xa5])],
    ['photos/dir/multi.bin', pattern(3 * 1024 * 1024 + 17, 3)],
    ['secret/empty', Buffer.alloc(0)],
    ['secret/one', Buffer.from([0])],
    ['secret/deep/er/multi.bin', pattern(5 * 65536 + 3, 4)],
    ['small/ünï cødé/ключ 🗝.txt', pattern(65536 * 2, 5)],
  ];
  for (const [path, data] of cases) {
    const [bucket, ...rest] = path.split('/');
    const encoded = `/${bucket}/${rest.map(encodeURIComponent).join('/')}`;
    const stored = await put(encoded, data, { 'content-type': 'application/x-test' });
    t.equal(stored.status, 200, `PUT ${path}`);
    const result = (await stored.json()) as { size: number; etag: string; chunks: number };
    t.equal(result.size, data.length);
    t.equal(stored.headers.get('etag'), `"${result.etag}"`);

    const got = await api(encoded);
    t.equal(got.status, 200, `GET ${path}`);
    t.equal(got.headers.get('content-length'), String(data.length));
    t.equal(got.headers.get('content-type'), 'application/x-test');
    t.equal(got.headers.get('etag'), `"${result.etag}"`);
    t.ok(Buffer.from(await got.arrayBuffer()).equals(data), `${path}: ${data.length} bytes round-trip`);

    const head = await api(encoded, { method: 'HEAD' });
    t.equal(head.status, 200);
    t.equal(head.headers.get('content-length'), String(data.length), 'HEAD: size');
    t.equal(head.headers.get('etag'), `"${result.etag}"`, 'HEAD: etag is the version id');
    t.ok(Date.parse(head.headers.get('last-modified') ?? '') > Date.now() - 60_000, 'HEAD: last-modified');
    t.equal(head.headers.get('accept-ranges'), 'bytes');

    const stat = (await (await api(`${encoded}?stat`)).json()) as {
      size: number;
      versionId: string;
      chunks: unknown[];
    };
    t.equal(stat.size, data.length);
    t.equal(stat.versionId, result.etag);
    t.equal(stat.chunks.length, result.chunks);
  }
  const multi = (await (await api('/secret/deep/er/multi.bin?stat')).json()) as { chunks: unknown[] };
  t.equal(multi.chunks.length, 6, '5 full 64 KiB chunks and a 3-byte tail');

  // A chunked upload (no Content-Length) streams just the same.
  const streamed = pattern(200_000, 9);
  const body = new ReadableStream({
    start(controller) {
      for (let i = 0; i < streamed.length; i += 30_000) controller.enqueue(streamed.subarray(i, i + 30_000));
      controller.close();
    },
  });
  const chunked = await api('/photos/chunked', { method: 'PUT', body, duplex: 'half' } as RequestInit);
  t.equal(chunked.status, 200, 'chunked transfer encoding');
  t.ok(Buffer.from(await (await api('/photos/chunked')).arrayBuffer()).equals(streamed));

  // Overwrite: the new version replaces the old one.
  const v2 = Buffer.from('second version');
  t.equal((await put('/photos/one', v2)).status, 200);
  t.same(Buffer.from(await (await api('/photos/one')).arrayBuffer()), v2);

  // Directory markers: a key ending in "/" with an empty body.
  t.equal((await put('/photos/folder/', Buffer.alloc(0))).status, 200);
  t.equal((await put('/photos/folder2/', Buffer.from('x'))).status, 400, 'a marker takes no body');
  t.equal((await api('/photos/nosuch')).status, 404);
  t.equal((await api('/nosuchbucket/k')).status, 404);
  t.equal((await put('/nosuchbucket/k', Buffer.from('x'))).status, 404, 'PUT into a missing bucket');
});

t.test('GET with Range: 206, Content-Range, 416, and 200 for ranges it ignores', async (t) => {
  const data = pattern(5 * 65536 + 3, 4);
  const size = data.length;
  const ranged = async (range: string) => api('/secret/deep/er/multi.bin', { headers: { range } });
  for (const [range, start, end] of [
    ['bytes=0-0', 0, 1],
    ['bytes=10-', 10, size],
    ['bytes=-5', size - 5, size],
    ['bytes=65530-65545', 65530, 65546],
    ['bytes=65536-131071', 65536, 131072],
    ['bytes=100-99999999', 100, size],
    ['bytes=-99999999', 0, size],
  ] as Array<[string, number, number]>) {
    const response = await ranged(range);
    t.equal(response.status, 206, range);
    t.equal(response.headers.get('content-range'), `bytes ${start}-${end - 1}/${size}`, range);
    t.equal(response.headers.get('content-length'), String(end - start), range);
    t.ok(Buffer.from(await response.arrayBuffer()).equals(data.subarray(start, end)), `${range}: the right bytes`);
  }
  for (const range of [`bytes=${size}-`, `bytes=${size + 10}-${size + 20}`, 'bytes=-0']) {
    const response = await ranged(range);
    t.equal(response.status, 416, range);
    t.equal(response.headers.get('content-range'), `bytes */${size}`, range);
    t.equal((await errorOf(t, response)).code, 'RANGE_NOT_SATISFIABLE');
  }
  const empty = await api('/photos/empty', { headers: { range: 'bytes=0-' } });
  t.equal(empty.status, 416, 'no byte of an empty object can be asked for');
  // RFC 9110 §14.2: an unknown unit, an invalid range or several ranges are ignored, not refused.
  for (const range of ['bytes=abc', 'bytes=5-3', 'bytes=5-1', 'items=0-1', 'bytes=0-1,5-6', 'bytes=-']) {
    const response = await ranged(range);
    t.equal(response.status, 200, `ignored: ${range}`);
    t.equal(response.headers.get('content-range'), null, `${range}: no Content-Range`);
    t.equal(response.headers.get('content-length'), String(size), `${range}: the whole length`);
    t.ok(Buffer.from(await response.arrayBuffer()).equals(data), `${range}: the whole object`);
  }
  const head = await api('/secret/deep/er/multi.bin', { method: 'HEAD', headers: { range: 'bytes=0-0' } });
  t.equal(head.status, 200, 'HEAD ignores Range');
  t.equal(head.headers.get('content-length'), String(size));
});

t.test('listing: prefix, delimiter, continuation', async (t) => {
  const keys = ['l/a', 'l/b/1', 'l/b/2', 'l/c', 'l/d/x/y', 'l/e', 'm'];
  for (const key of keys) t.equal((await put(`/small/${key}`, Buffer.from(key))).status, 200);
  const level = (await (await api('/small?prefix=l/&delimiter=/')).json()) as {
    objects: Array<{ key: string; size: number; etag: string; lastModified: string }>;
    prefixes: string[];
    continuation?: string;
  };
  t.same(
    level.objects.map((o) => o.key),
    ['l/a', 'l/c', 'l/e'],
  );
  t.same(level.prefixes, ['l/b/', 'l/d/']);
  t.equal(level.continuation, undefined, 'one page');
  t.equal(level.objects[0]!.size, 3);
  t.match(level.objects[0]!.etag, /^[0-9a-f]{32}$/);

  const seen: string[] = [];
  let continuation: string | undefined;
  let pages = 0;
  do {
    const query = new URLSearchParams({ prefix: 'l/', limit: '2' });
    if (continuation) query.set('continuation', continuation);
    const page = (await (await api(`/small?${query}`)).json()) as {
      objects: Array<{ key: string }>;
      continuation?: string;
    };
    t.ok(page.objects.length <= 2);
    seen.push(...page.objects.map((o) => o.key));
    continuation = page.continuation;
    pages++;
  } while (continuation && pages < 10);
  t.same(seen, keys.slice(0, 6), 'every key under the prefix once, in order, over pages');
  t.ok(pages >= 3, `${pages} pages`);

  for (const query of [
    'delimiter=x',
    'continuation=!!',
    'continuation=bm90LWZyb20tdXM%3D',
    'limit=0',
    'limit=5000',
    'sort=asc',
    'prefix=a&prefix=b',
    'prefix=%E0',
  ]) {
    const response = await api(`/small?${query}`);
    t.equal(response.status, 400, query);
    t.equal((await errorOf(t, response)).code, 'INVALID', query);
  }
});

t.test('delete: 204, then gone', async (t) => {
  t.equal((await api('/photos/chunked', { method: 'DELETE' })).status, 204);
  t.equal((await api('/photos/chunked')).status, 404);
  const again = await api('/photos/chunked', { method: 'DELETE' });
  t.equal(again.status, 404);
  t.equal((await errorOf(t, again)).code, 'NOT_FOUND');
  const notEmpty = await api('/photos', { method: 'DELETE' });
  t.equal(notEmpty.status, 409);
  t.equal((await errorOf(t, notEmpty)).code, 'NOT_EMPTY');
});

t.test('an upload cut off mid-body leaves the previous version and nothing else', async (t) => {
  const before = (await (await api('/admin/stats')).json()) as { backends: Array<{ chunks: number }> };
  const chunksBefore = before.backends.reduce((n, b) => n + b.chunks, 0);
  const old = await (await api('/photos/dir/multi.bin')).arrayBuffer();
  for (const key of ['dir/multi.bin', 'fresh.bin']) {
    await new Promise<void>((resolve, reject) => {
      const socket = connect(Number(new URL(url).port), '127.0.0.1', () => {
        socket.write(
          `PUT /photos/${key} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${token}\r\ncontent-length: ${4 * 1024 * 1024}\r\n\r\n`,
        );
        socket.write(pattern(2 * 1024 * 1024 + 5, 11), () => setTimeout(() => socket.destroy(), 100));
      });
      socket.on('close', () => resolve());
      socket.on('error', reject);
    });
  }
  // The server notices the cut, aborts the writer and deletes what it stored.
  let chunksAfter = -1;
  for (let i = 0; i < 50 && chunksAfter !== chunksBefore; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const after = (await (await api('/admin/stats')).json()) as { backends: Array<{ chunks: number }> };
    chunksAfter = after.backends.reduce((n, b) => n + b.chunks, 0);
  }
  t.equal(chunksAfter, chunksBefore, 'no chunk of the cut uploads is left on the backends');
  const now = await api('/photos/dir/multi.bin');
  t.ok(Buffer.from(await now.arrayBuffer()).equals(Buffer.from(old)), 'the previous version is intact');
  t.equal((await api('/photos/fresh.bin')).status, 404, 'a cut first upload is not visible');
});

t.test('malformed requests get a JSON error, never a crash', async (t) => {
  const h = `host: x\r\nauthorization: Bearer ${token}\r\n`;
  const cases: Array<[string, string | Buffer, number, string]> = [
    ['bad percent-encoding', `GET /photos/%E0%A4%A HTTP/1.1\r\n${h}\r\n`, 400, 'INVALID'],
    ['invalid UTF-8', `GET /photos/%FF%FE HTTP/1.1\r\n${h}\r\n`, 400, 'INVALID'],
    ['NUL in a key', `GET /photos/a%00b HTTP/1.1\r\n${h}\r\n`, 400, 'INVALID'],
    ['dot-dot key', `GET /photos/a/../../etc/passwd HTTP/1.1\r\n${h}\r\n`, 400, 'INVALID'],
    ['empty segment', `GET /photos/a//b HTTP/1.1\r\n${h}\r\n`, 400, 'INVALID'],
    ['encoded bucket slash', `GET /pho%2Ftos HTTP/1.1\r\n${h}\r\n`, 400, 'INVALID'],
    ['long key', `GET /photos/${'k'.repeat(1100)} HTTP/1.1\r\n${h}\r\n`, 400, 'NAME_TOO_LONG'],
    ['huge header', `GET / HTTP/1.1\r\n${h}x-big: ${'a'.repeat(70_000)}\r\n\r\n`, 431, 'HEADERS_TOO_LARGE'],
    ['PUT without length', `PUT /photos/k HTTP/1.1\r\n${h}\r\n`, 411, 'LENGTH_REQUIRED'],
    ['wrong method on an object', `PATCH /photos/k HTTP/1.1\r\n${h}\r\n`, 405, 'METHOD_NOT_ALLOWED'],
    ['wrong method on the root', `POST / HTTP/1.1\r\n${h}content-length: 0\r\n\r\n`, 405, 'METHOD_NOT_ALLOWED'],
    ['wrong method on a bucket', `POST /photos HTTP/1.1\r\n${h}content-length: 0\r\n\r\n`, 405, 'METHOD_NOT_ALLOWED'],
    ['garbage request line', 'HELLO THERE\r\n\r\n', 400, 'BAD_REQUEST'],
    ['absolute-form target', `GET http://x/photos HTTP/1.1\r\n${h}\r\n`, 400, 'INVALID'],
    [
      'length and chunked',
      `PUT /photos/k HTTP/1.1\r\n${h}content-length: 3\r\ntransfer-encoding: chunked\r\n\r\n`,
      400,
      'BAD_REQUEST',
    ],
    ['bad content-length', `PUT /photos/k HTTP/1.1\r\n${h}content-length: abc\r\n\r\n`, 400, 'BAD_REQUEST'],
    [
      'bad content-type',
      `PUT /photos/k HTTP/1.1\r\n${h}content-length: 1\r\ncontent-type: not a type\r\n\r\nx`,
      400,
      'INVALID',
    ],
    ['unknown admin path', `GET /admin/secrets HTTP/1.1\r\n${h}\r\n`, 404, 'NOT_FOUND'],
    ['metrics on the API port', `GET /metrics HTTP/1.1\r\n${h}\r\n`, 400, 'BAD_REQUEST'],
    ['query on an object PUT', `PUT /photos/k?acl HTTP/1.1\r\n${h}content-length: 1\r\n\r\nx`, 400, 'INVALID'],
    ['bad escape in the query', `GET /small?prefix=%zz HTTP/1.1\r\n${h}\r\n`, 400, 'INVALID'],
    ['unknown expectation', `GET / HTTP/1.1\r\n${h}expect: teapot\r\n\r\n`, 417, 'EXPECTATION_FAILED'],
    ['body on DELETE', `DELETE /photos/one HTTP/1.1\r\n${h}content-length: 4\r\n\r\nabcd`, 400, 'BAD_REQUEST'],
  ];
  for (const [what, request, status, code] of cases) {
    const response = await rawRequest(url, request);
    t.equal(response.status, status, what);
    t.match(response.headers['content-type'] ?? '', /application\/json/, `${what}: JSON`);
    let parsed: { error?: { code?: string; message?: string } } = {};
    try {
      parsed = JSON.parse(response.body);
    } catch {}
    t.equal(parsed.error?.code, code, `${what}: ${parsed.error?.message}`);
  }
  t.equal((await api('/photos/k')).status, 404, 'none of them stored anything');
  t.equal((await api('/photos/one')).status, 200, 'nor deleted anything');
  t.equal((await fetch(`${url}/health`)).status, 200, 'the server is still up');
});

t.test('/admin/stats and /metrics', async (t) => {
  const stats = (await (await api('/admin/stats')).json()) as {
    backends: Array<{ healthy: boolean; chunks: number }>;
    buckets: Array<{ name: string; objects: number }>;
    repair: { queued: number; underReplicatedChunks: number };
    server: { pid: number };
  };
  t.equal(stats.backends.length, 3);
  t.ok(stats.backends.every((b) => b.healthy && b.chunks > 0));
  t.match(stats.buckets, [{ name: 'photos' }, { name: 'secret', objects: 3, chunks: 6 }, { name: 'small' }]);
  t.equal(stats.repair.underReplicatedChunks, 0);
  t.equal(stats.repair.queued, 0);
  t.equal(stats.server.pid, server.pid);

  const text = await (await fetch(`${server.metricsUrl}/metrics`)).text();
  t.match(text, /lilio_http_requests_total\{route="\/\{bucket\}\/\{key\}",method="PUT",status="200"\} \d+/);
  t.match(text, /lilio_http_requests_total\{route="\/\{bucket\}\/\{key\}",method="GET",status="206"\} \d+/);
  t.match(text, /lilio_http_requests_total\{route="\/\{bucket\}",method="PUT",status="401"\} \d+/);
  t.match(text, /lilio_http_requests_total\{route="unknown",method="OTHER",status="431"\} 1/);
  t.match(text, /lilio_http_request_duration_seconds_bucket\{le="\+Inf",route="\/admin\/stats",method="GET"\} \d+/);
  t.match(text, /lilio_objects_total\{bucket="secret",operation="put"\} \d+/);
  t.match(text, /lilio_quorum_write_total\{status="success"\} [1-9]/);
  t.match(text, /process_resident_memory_bytes \d+/);
  t.equal((await fetch(`${server.metricsUrl}/health`)).status, 200);
});
