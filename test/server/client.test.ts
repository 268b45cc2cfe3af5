import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { LilioError } from '../../src/core/errors.js';
import { LilioClient } from '../../src/server/client.js';
import { errorFromWire, errorResponse, httpStatus } from '../../src/server/errors.js';

// The client against a stand-in server that misbehaves on purpose: a cut download must be an
// error (never a short file), and every error body becomes the LilioError it describes.

async function serve(t: Test, handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test('a download cut short is an error', async (t) => {
  const url = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-length': '100' });
    res.write(Buffer.alloc(50));
    setTimeout(() => res.destroy(), 20);
  });
  const client = new LilioClient(url, 'token-token-token');
  t.teardown(() => client.close());
  const object = await client.getObject('photos', 'k');
  t.equal(object.size, 100);
  let received = 0;
  await t.rejects(
    (async () => {
      for await (const piece of object.body) received += piece.byteLength;
    })(),
    { code: 'UNAVAILABLE', message: /download of photos\/k was cut after 50 of 100 bytes/ },
  );
  t.equal(received, 50);
});

t.test('error bodies become the LilioError they name', async (t) => {
  const url = await serve(t, (req, res) => {
    if (req.url === '/json') {
      const { status, headers, body } = errorResponse(new LilioError('NOT_EMPTY', 'bucket "b" is not empty'));
      res.writeHead(status, headers).end(body);
    } else if (req.url === '/auth') {
      res
        .writeHead(401, { 'content-type': 'application/json' })
        .end('{"error":{"code":"UNAUTHORIZED","message":"no"}}');
    } else {
      res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>bad gateway</h1>');
    }
  });
  const client = new LilioClient(url, undefined);
  t.teardown(() => client.close());
  await t.rejects(client.deleteBucket('json'), { code: 'NOT_EMPTY', message: 'bucket "b" is not empty' });
  await t.rejects(client.deleteBucket('auth'), { code: 'PERMISSION', message: 'no' });
  await t.rejects(client.deleteBucket('proxy'), { code: 'UNAVAILABLE', message: 'the server answered 502' });
});

t.test('a server that ignores Expect: 100-continue still gets the body', async (t) => {
  const server: Server = createServer();
  server.on('checkContinue', async (req, res) => {
    let size = 0;
    for await (const piece of req as AsyncIterable<Buffer>) size += piece.byteLength;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ size }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const client = new LilioClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, undefined);
  t.teardown(() => client.close());
  async function* body() {
    yield Buffer.alloc(1000);
    yield Buffer.alloc(234);
  }
  t.match(await client.putObject('photos', 'k', body(), { size: 1234 }), { size: 1234 });
});

t.test('the one mapping', async (t) => {
  t.equal(httpStatus('NOT_FOUND'), 404);
  t.equal(httpStatus('QUORUM'), 503);
  t.equal(httpStatus('NO_SPACE'), 507);
  t.equal(httpStatus('UNAUTHORIZED'), 401);
  const internal = errorResponse(new TypeError('secret internals'));
  t.equal(internal.status, 500);
  t.same(JSON.parse(internal.body), { error: { code: 'INTERNAL', message: 'internal error' } }, 'no internals leak');
  t.match(errorFromWire(418, 'not an object'), { code: 'INVALID', message: 'the server answered 418' });
  t.throws(() => new LilioClient('not a url', undefined), { code: 'INVALID' });
  t.throws(() => new LilioClient('http://x/?q=1', undefined), { code: 'INVALID' });
});
