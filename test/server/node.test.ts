import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import t from 'tap';
import { HttpBackend } from '../../src/backends/http.js';
import { LocalBackend } from '../../src/backends/local.js';
import { PrometheusNodeMetrics } from '../../src/metrics/node.js';
import { DEFAULT_MAX_CHUNK_BYTES, StorageNode } from '../../src/server/node.js';
import { TokenSet } from '../../src/server/tokens.js';
import { chunkId } from '../contracts/backend.js';
import { startNode } from '../fixtures/node.js';

interface RawResponse {
  status: number;
  head: string;
  body: string;
  /** The node closed the connection. */
  closed: boolean;
}

/**
 * Sends bytes exactly as given (no client-side path normalisation) and reads
 * the first response (`untilClose`: everything until the node hangs up).
 * `thenBody` is written after the head, ignoring a node that hangs up meanwhile.
 */
function raw(port: number, head: string, thenBody?: Buffer, untilClose = false): Promise<RawResponse> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let closed = false;
    const finish = () => {
      clearTimeout(timer);
      const [headPart = '', ...rest] = text.split('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(headPart)?.[1] ?? 0);
      resolve({ status, head: headPart, body: rest.join('\r\n\r\n'), closed });
      socket.destroy();
    };
    const timer = setTimeout(finish, 10_000);
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      text += d;
      // A complete response with a body we can measure: done, whether or not the node closes.
      const length = /content-length: (\d+)/i.exec(text)?.[1];
      const split = text.indexOf('\r\n\r\n');
      if (!untilClose && split >= 0 && length !== undefined && text.length - split - 4 >= Number(length)) finish();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      closed = true;
      finish();
    });
    socket.write(head);
    if (thenBody) socket.write(thenBody, () => {});
  });
}

/** Every file (not directory) below dir, relative. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1));
}

t.test('bad input to a real lilio node is refused and writes nothing', async (t) => {
  const node = await startNode(t);
  const valid = chunkId();
  const put = (path: string, auth: string | undefined, extra = '') =>
    raw(
      node.port,
      `PUT ${path} HTTP/1.1\r\nhost: x\r\n${auth ? `authorization: ${auth}\r\n` : ''}content-length: 5\r\nconnection: close\r\n${extra}\r\nhello`,
    );
  const bearer = `Bearer ${node.token}`;

  t.test('no token, wrong tokens', async (t) => {
    for (const [label, auth] of [
      ['no token', undefined],
      ['wrong token of the same length', `Bearer ${'f'.repeat(node.token.length)}`],
      ['wrong, shorter token', 'Bearer abc'],
      ['a prefix of the token', `Bearer ${node.token.slice(0, -1)}`],
      ['the token with something appended', `${bearer}x`],
      ['the token without the Bearer scheme', node.token],
      ['basic auth', `Basic ${Buffer.from(`u:${node.token}`).toString('base64')}`],
    ] as const) {
      const res = await put(`/chunks/${valid}`, auth);
      t.equal(res.status, 401, `${label}: 401`);
      t.match(res.head, /www-authenticate: Bearer/i);
      t.match(JSON.parse(res.body), { error: { code: 'PERMISSION' } }, `${label}: JSON error body`);
    }
    for (const path of ['/info', '/chunks', `/chunks/${valid}`]) {
      const res = await raw(node.port, `GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
      t.equal(res.status, 401, `GET ${path} without a token`);
    }
    // A liveness probe needs no token and learns only whether the disk works; a wrong token is still refused.
    const probe = await raw(node.port, 'GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
    t.equal(probe.status, 200, 'GET /health without a token');
    t.same(JSON.parse(probe.body), { ok: true }, 'the anonymous answer carries no detail');
    const wrong = await raw(
      node.port,
      'GET /health HTTP/1.1\r\nhost: x\r\nauthorization: Bearer abc\r\nconnection: close\r\n\r\n',
    );
    t.equal(wrong.status, 401, 'GET /health with a wrong token');
  });

  t.test('ids that are not chunk ids, ../ above all', async (t) => {
    const bad = [
      '/chunks/../../../../tmp/escaped',
      `/chunks/../${valid}`,
      `/chunks/${valid}/../${valid}`,
      '/chunks/..%2F..%2Fescaped',
      '/chunks/%2e%2e%2fescaped',
      `/chunks/${valid.slice(0, 31)}/`,
      `/chunks/${valid.toUpperCase()}`,
      `/chunks/${valid}%00`,
      `/chunks/${valid}0`,
      '/chunks/',
      '/chunks/.health.0123.tmp',
    ];
    for (const path of bad) {
      const res = await put(path, bearer);
      t.equal(res.status, 400, `PUT ${path}: 400`);
      t.match(JSON.parse(res.body), { error: { code: 'INVALID', message: /invalid chunk id/ } });
      for (const method of ['GET', 'DELETE', 'HEAD']) {
        const other = await raw(
          node.port,
          `${method} ${path} HTTP/1.1\r\nhost: x\r\nauthorization: ${bearer}\r\nconnection: close\r\n\r\n`,
        );
        t.equal(other.status, 400, `${method} ${path}: 400`);
      }
    }
  });

  t.test('bodies that are too large, unannounced or cut short', async (t) => {
    const over = DEFAULT_MAX_CHUNK_BYTES + 1;
    const announced = await raw(
      node.port,
      `PUT /chunks/${valid} HTTP/1.1\r\nhost: x\r\nauthorization: ${bearer}\r\ncontent-length: ${over}\r\nexpect: 100-continue\r\n\r\n`,
    );
    t.equal(announced.status, 413, 'oversized with Expect: 100-continue: refused before the body');
    t.notMatch(announced.head, /100 Continue/, 'no go-ahead was given');
    t.match(JSON.parse(announced.body), { error: { code: 'INVALID', message: /larger than/ } });

    const pushed = await raw(
      node.port,
      `PUT /chunks/${valid} HTTP/1.1\r\nhost: x\r\nauthorization: ${bearer}\r\ncontent-length: ${100 * 1024 * 1024}\r\n\r\n`,
      randomBytes(4 * 1024 * 1024),
      true,
    );
    t.equal(pushed.status, 413, 'oversized body sent regardless: 413');
    t.ok(pushed.closed, 'and the node hung up instead of reading 100 MiB');

    const chunked = await raw(
      node.port,
      `PUT /chunks/${valid} HTTP/1.1\r\nhost: x\r\nauthorization: ${bearer}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    );
    t.equal(chunked.status, 411, 'no Content-Length: 411');

    // Half a body, then the client vanishes: no chunk, no temp file.
    const socket = connect(node.port, '127.0.0.1');
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(
      `PUT /chunks/${valid} HTTP/1.1\r\nhost: x\r\nauthorization: ${bearer}\r\ncontent-length: 1000000\r\n\r\n`,
    );
    socket.write(randomBytes(300_000));
    await new Promise((resolve) => setTimeout(resolve, 300));
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 300));
  });

  t.test('wrong methods, unknown routes, garbage', async (t) => {
    const post = await raw(
      node.port,
      `POST /chunks/${valid} HTTP/1.1\r\nhost: x\r\nauthorization: ${bearer}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`,
    );
    t.equal(post.status, 405);
    t.match(post.head, /allow: GET, HEAD, PUT, DELETE/i);
    const unknown = await raw(
      node.port,
      `GET /etc/passwd HTTP/1.1\r\nhost: x\r\nauthorization: ${bearer}\r\nconnection: close\r\n\r\n`,
    );
    t.equal(unknown.status, 404);
    t.match(JSON.parse(unknown.body), { error: { code: 'NOT_FOUND' } });
    const garbage = await raw(node.port, 'THIS IS NOT HTTP\r\n\r\n');
    t.equal(garbage.status, 400, 'a malformed request line gets 400');
    const huge = await raw(node.port, `GET /health HTTP/1.1\r\nx-junk: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
    t.equal(huge.status, 431, 'oversized headers get 431');
  });

  t.test('afterwards: nothing was written and the node is still serving', async (t) => {
    t.same(await filesUnder(node.dir), [], 'the node directory holds no file at all');
    t.same((await readdir(join(node.dir, '..'))).sort(), ['chunks', 'token'], 'nothing appeared beside it');
    const health = await raw(
      node.port,
      `GET /health HTTP/1.1\r\nhost: x\r\nauthorization: ${bearer}\r\nconnection: close\r\n\r\n`,
    );
    t.equal(health.status, 200, 'still healthy');
    const stored = await put(`/chunks/${valid}`, bearer);
    t.equal(stored.status, 204, 'a correct request still works');
    t.same(await filesUnder(node.dir), [`${valid.slice(0, 2)}/${valid.slice(2, 4)}/${valid}`]);
  });
});

t.test('slow clients cannot pin the node', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lilio-node-slow-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const registry = new Registry();
  const node = new StorageNode({
    backend: new LocalBackend({ name: 'node', path: dir }),
    tokens: new TokenSet(['t'.repeat(20)]),
    headersTimeoutMs: 300,
    requestTimeoutMs: 2_000,
    idleTimeoutMs: 500,
    metrics: new PrometheusNodeMetrics(registry),
  });
  const { port } = await node.listen(0, '127.0.0.1');
  t.teardown(() => node.close(100));
  const bearer = `Bearer ${'t'.repeat(20)}`;

  const closedWithin = (head: string, body?: Buffer) =>
    new Promise<number>((resolve) => {
      const started = performance.now();
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => {});
      socket.on('data', () => {});
      socket.once('close', () => resolve(performance.now() - started));
      socket.write(head);
      if (body) socket.write(body);
      // Never more: the node must hang up by itself. (The test's own timeout is the backstop.)
    });

  const headers = await closedWithin('GET /health HTTP/1.1\r\nhost: x\r\n');
  t.ok(headers < 30_000, `headers never finished: dropped after ${Math.round(headers)} ms`);
  const stalled = await closedWithin(
    `PUT /chunks/${chunkId()} HTTP/1.1\r\nhost: x\r\nauthorization: ${bearer}\r\ncontent-length: 100000\r\n\r\n`,
    randomBytes(1000),
  );
  t.ok(stalled < 30_000, `body stalled: dropped after ${Math.round(stalled)} ms`);
  t.same(await filesUnder(dir), [], 'the stalled body left nothing, not even a temp file');

  const ok = await raw(
    port,
    `GET /health HTTP/1.1\r\nhost: x\r\nauthorization: ${bearer}\r\nconnection: close\r\n\r\n`,
  );
  t.equal(ok.status, 200, 'the node serves on');
  const metrics = await registry.metrics();
  t.match(metrics, /lilio_node_requests_total\{route="health",method="GET",status="200"\} 1/);
  t.match(metrics, /lilio_node_requests_total\{route="chunk",method="PUT",status="aborted"\} 1/);
  t.match(metrics, /lilio_node_client_errors_total [1-9]/, 'the header timeout counted');
});

t.test('temporary files: the http backend has a real lilio node sweep the old ones, token required', async (t) => {
  const node = await startNode(t);
  const backend = new HttpBackend({ name: 'node', url: node.url, token: node.token, timeoutMs: 5_000 });
  t.teardown(() => backend.close());
  const id = chunkId();
  await backend.put(id, Buffer.from('a whole chunk'));
  const sub = join(node.dir, id.slice(0, 2), id.slice(2, 4));
  // Left by a node killed in the middle of two PUTs: one long ago, one just now (a write in progress?).
  const old = join(sub, `.${id}.0123456789ab.tmp`);
  const young = join(sub, `.${id}.ba9876543210.tmp`);
  for (const file of [old, young]) await writeFile(file, 'half a chunk');
  const past = new Date(Date.now() - 2 * 3_600_000);
  await utimes(old, past, past);

  const refused = await raw(
    node.port,
    'DELETE /temporary-files?olderThanMs=0 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n',
  );
  t.equal(refused.status, 401, 'no token, no sweep');
  const bad = await raw(
    node.port,
    `DELETE /temporary-files?olderThanMs=soon HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${node.token}\r\nconnection: close\r\n\r\n`,
  );
  t.equal(bad.status, 400, 'a malformed age is refused');
  t.equal((await filesUnder(node.dir)).length, 3, 'nothing removed so far');

  t.equal(await backend.sweepTemporaryFiles(3_600_000), 1, 'one file older than an hour');
  t.same(
    (await filesUnder(node.dir)).sort(),
    [join(id.slice(0, 2), id.slice(2, 4), id), join(id.slice(0, 2), id.slice(2, 4), `.${id}.ba9876543210.tmp`)].sort(),
    'the chunk and the young temporary file stay',
  );
  t.equal((await backend.get(id)).toString(), 'a whole chunk');
  t.equal(await backend.sweepTemporaryFiles(3_600_000), 0, 'nothing left that old');
});
