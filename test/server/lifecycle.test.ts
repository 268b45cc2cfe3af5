import { connect, type Socket } from 'node:net';
import t from 'tap';
import { pattern } from '../fixtures/engine.js';
import { startServer } from '../fixtures/server.js';

// SIGTERM: the server stops taking connections, lets uploads in progress finish within the
// grace period, cuts the rest off (committing nothing of them), and exits 0.

interface Upload {
  socket: Socket;
  response: Promise<string>;
}

function startUpload(url: string, token: string, key: string, total: number, first: Buffer): Upload {
  const socket = connect(Number(new URL(url).port), '127.0.0.1');
  let text = '';
  const response = new Promise<string>((resolve) => {
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
    });
    socket.on('close', () => resolve(text));
    socket.on('error', () => undefined);
  });
  socket.write(
    `PUT /photos/${key} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${token}\r\ncontent-length: ${total}\r\n\r\n`,
  );
  socket.write(first);
  return { socket, response };
}

t.test('SIGTERM finishes uploads in progress within the grace period and cuts the rest', async (t) => {
  const server = await startServer(t, { args: ['--grace', '5'] });
  t.equal((await server.fetch('/photos', { method: 'PUT' })).status, 201);
  const data = pattern(2 * 1024 * 1024 + 9, 21);
  const half = 1024 * 1024;
  const finishing = startUpload(server.url, server.token, 'finished.bin', data.length, data.subarray(0, half));
  const abandoned = startUpload(server.url, server.token, 'abandoned.bin', data.length, data.subarray(0, half));
  // Both requests are being served before the signal arrives.
  for (let i = 0; i < 100; i++) {
    const stats = (await (await server.fetch('/admin/stats')).json()) as { server: { activeRequests: number } };
    if (stats.server.activeRequests >= 3) break;
    await new Promise((r) => setTimeout(r, 50));
  }

  process.kill(server.pid, 'SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  await t.rejects(fetch(`${server.url}/health`), 'no new connections once stopping');
  // write, not end: a half-closed client socket means "no answer wanted" to node:http.
  finishing.socket.write(data.subarray(half));

  const finished = await finishing.response;
  t.match(finished, /^HTTP\/1\.1 200 /, 'the upload that finished within the grace period succeeded');
  t.match(finished, /connection: close/i);
  const cut = await abandoned.response;
  t.notMatch(cut, /^HTTP\/1\.1 200 /, 'the upload still running after the grace period was cut off');
  const exit = await server.exited;
  t.same(exit, { code: 0, signal: null }, 'exit 0');
  t.match(server.stderr(), /terminated: finishing requests in progress \(up to 5 s\)/);

  const back = await server.localCli(['get', 'photos/finished.bin', '-']);
  t.equal(back.code, 0, back.stderr);
  t.ok(back.stdout.equals(data), 'the finished upload is committed, byte for byte');
  const gone = await server.localCli(['stat', 'photos/abandoned.bin']);
  t.equal(gone.code, 1, 'the cut upload committed nothing');
  t.match(gone.stderr, /does not exist/);
});

t.test('the server refuses to start without usable tokens', async (t) => {
  await t.rejects(startServer(t, { args: ['--token-file', '/nonexistent/tokens'] }), /cannot read token file/);
});
