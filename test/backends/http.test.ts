import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { HttpBackend } from '../../src/backends/http.js';
import { backendContract, chunkId, collect } from '../contracts/backend.js';
import { startNode } from '../fixtures/node.js';

t.test('http backend contract against a real lilio node', async (t) => {
  // One node process for the whole contract; each subtest starts from an empty directory.
  const node = await startNode(t);
  backendContract(t, async () => ({
    backend: new HttpBackend({ name: 'node-1', url: node.url, token: node.token, timeoutMs: 10_000 }),
    cleanup: async () => {
      // Empty the directory the node serves, but keep it: the node checked it once at start.
      for (const entry of await readdir(node.dir)) await rm(join(node.dir, entry), { recursive: true, force: true });
    },
  }));
});

t.test('a node that accepts connections and never answers cannot hang a call', async (t) => {
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => {
    // Read and hold everything, answer nothing.
    sockets.add(socket);
    socket.on('data', () => {});
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
  const port = (silent.address() as { port: number }).port;
  const backend = new HttpBackend({
    name: 'silent',
    url: `http://127.0.0.1:${port}`,
    token: 'x'.repeat(16),
    timeoutMs: 300,
  });
  t.teardown(() => backend.close());
  const id = chunkId();

  const calls: Array<[string, () => Promise<unknown>]> = [
    ['put', () => backend.put(id, randomBytes(100_000))],
    ['get', () => backend.get(id)],
    ['stat', () => backend.stat(id)],
    ['delete', () => backend.delete(id)],
    ['list', () => collect(backend.list())],
    ['listEntries', () => collect(backend.listEntries())],
    ['info', () => backend.info()],
  ];
  for (const [name, call] of calls) {
    const started = performance.now();
    await t.rejects(call(), { code: 'TIMEOUT', message: /within 300 ms/ }, `${name} hits its deadline`);
    t.ok(performance.now() - started < 10_000, `${name} did not wait for the connection to die`);
  }
  const health = await backend.health();
  t.equal(health.ok, false, 'health reports the silent node as not ok');
  t.match(health.error, /within 300 ms/);

  // The caller's signal ends a call sooner than the deadline, with the caller's reason.
  const patient = new HttpBackend({
    name: 'silent',
    url: `http://127.0.0.1:${port}`,
    token: 'x'.repeat(16),
    timeoutMs: 60_000,
  });
  t.teardown(() => patient.close());
  const controller = new AbortController();
  const reason = new Error('no longer needed');
  setTimeout(() => controller.abort(reason), 100);
  const err = await patient.get(id, { signal: controller.signal }).catch((e: unknown) => e);
  t.equal(err, reason, 'the signal aborts a call in progress');
});

t.test(
  'a node killed mid-life fails calls fast; restarted on the same port and directory it serves again',
  async (t) => {
    const node = await startNode(t);
    const backend = new HttpBackend({ name: 'node-1', url: node.url, token: node.token, timeoutMs: 5_000 });
    t.teardown(() => backend.close());
    const id = chunkId();
    const data = randomBytes(300_000);
    await backend.put(id, data);
    t.ok((await backend.get(id)).equals(data), 'keep-alive connection in use');

    await node.kill9();
    await t.rejects(backend.get(id), { code: 'UNAVAILABLE', message: /cannot reach/ }, 'get on a dead node');
    await t.rejects(backend.put(chunkId(), data), { code: 'UNAVAILABLE' }, 'put on a dead node');
    t.equal((await backend.health()).ok, false, 'health says down');

    await node.restart();
    t.equal((await backend.health()).ok, true, 'health says up again');
    t.ok((await backend.get(id)).equals(data), 'the chunk survived the kill');
    t.same(await collect(backend.list()), [id]);
  },
);

t.test('a wrong token is PERMISSION and health says why', async (t) => {
  const node = await startNode(t);
  const backend = new HttpBackend({ name: 'node-1', url: node.url, token: 'wrong-token-0123456789', timeoutMs: 5_000 });
  t.teardown(() => backend.close());
  await t.rejects(backend.put(chunkId(), Buffer.from('x')), { code: 'PERMISSION', message: /refused the token/ });
  await t.rejects(backend.get(chunkId()), { code: 'PERMISSION' });
  const health = await backend.health();
  t.equal(health.ok, false);
  t.match(health.error, /refused the token/);
  t.same(
    await collect(new HttpBackend({ name: 'ok', url: node.url, token: node.token }).list()),
    [],
    'nothing was stored',
  );
});

t.test('a keep-alive socket the node dropped is retried once on a fresh one', async (t) => {
  // A node that answers the first request of each connection and drops the connection at
  // its second: exactly what a client meets when its idle socket was closed under it.
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    let requests = 0;
    socket.on('data', () => {
      requests++;
      if (requests > 1) socket.destroy();
      else socket.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: keep-alive\r\n\r\nhello');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const backend = new HttpBackend({
    name: 'flaky',
    url: `http://127.0.0.1:${port}`,
    token: 'x'.repeat(16),
    timeoutMs: 2_000,
  });
  t.teardown(() => backend.close());
  const id = chunkId();
  t.equal((await backend.get(id)).toString(), 'hello', 'first call on a new connection');
  t.equal((await backend.get(id)).toString(), 'hello', 'second call: the reused socket died, the retry succeeded');
  t.equal(connections, 2, 'the retry opened one new connection');
});

t.test('the config accepts http storages and refuses bad ones by field', async (t) => {
  const { parseConfig } = await import('../../src/config/load.js');
  const base = { quorum: { n: 1, w: 1, r: 1 } };
  const ok = parseConfig({
    ...base,
    storages: [{ name: 'n1', type: 'http', url: 'http://10.0.0.1:7400', tokenFile: 't' }],
  });
  t.match(ok.storages[0], { type: 'http', url: 'http://10.0.0.1:7400', tokenFile: 't' });
  t.throws(() => parseConfig({ ...base, storages: [{ name: 'n1', type: 'http', url: 'ftp://x', tokenFile: 't' }] }), {
    message: /storages\[0\]\.url: must be an http/,
  });
  t.throws(() => parseConfig({ ...base, storages: [{ name: 'n1', type: 'http', url: 'http://x' }] }), {
    message: /storages\[0\]\.tokenFile/,
  });
  t.throws(
    () =>
      parseConfig({ ...base, storages: [{ name: 'n1', type: 'http', url: 'http://x', tokenFile: 't', token: 'x' }] }),
    { message: /token/ },
  );
});

t.test("the node's answers map onto the LilioError family", async (t) => {
  const { createServer: createHttpServer } = await import('node:http');
  // path -> [status, body]
  const answers: Record<string, [number, string]> = {
    507: [507, JSON.stringify({ error: { code: 'NO_SPACE', message: 'disk full' } })],
    503: [503, JSON.stringify({ error: { code: 'UNAVAILABLE', message: 'cannot write' } })],
    500: [500, 'not json at all'],
    404: [404, JSON.stringify({ error: { code: 'NOT_FOUND', message: 'no chunk' } })],
    413: [413, ''],
    400: [400, JSON.stringify({ error: { code: 'INVALID', message: 'invalid chunk id' } })],
    401: [401, ''],
    504: [504, JSON.stringify({ error: { code: 'TIMEOUT', message: 'slow disk' } })],
    418: [418, JSON.stringify({ error: { code: 'READ_ONLY', message: 'remounted read-only' } })],
  };
  let status = '500';
  const server = createHttpServer((req, res) => {
    req.resume();
    const [code, body] = answers[status]!;
    res.writeHead(code, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const backend = new HttpBackend({
    name: 'n',
    url: `http://127.0.0.1:${port}/`,
    token: 'x'.repeat(16),
    timeoutMs: 2_000,
  });
  t.teardown(() => backend.close());
  const expected: Record<string, [string, RegExp]> = {
    507: ['NO_SPACE', /backend "n": PUT: disk full/],
    503: ['UNAVAILABLE', /cannot write/],
    500: ['UNAVAILABLE', /HTTP 500/],
    404: ['NOT_FOUND', /no chunk/],
    413: ['INVALID', /HTTP 413/],
    400: ['INVALID', /invalid chunk id/],
    401: ['PERMISSION', /refused the token/],
    504: ['TIMEOUT', /slow disk/],
    418: ['READ_ONLY', /read-only/],
  };
  for (const [answer, [code, message]] of Object.entries(expected)) {
    status = answer;
    await t.rejects(backend.put(chunkId(), Buffer.from('x')), { code, message }, `HTTP ${answer} -> ${code}`);
  }
  status = '404';
  t.equal(await backend.stat(chunkId()), undefined, 'HEAD 404 is "not held"');
  status = '503';
  const health = await backend.health();
  t.equal(health.ok, false);
});
