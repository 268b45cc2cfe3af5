import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { pattern } from '../fixtures/engine.js';
import { startServer } from '../fixtures/server.js';

// A PUT through the API that succeeded on W replicas but missed one logs a timestamped warning
// in the server's log, naming the object and the backend.

t.test('the server logs a put that left chunks under-replicated', async (t) => {
  const server = await startServer(t);
  t.equal((await server.fetch('/photos', { method: 'PUT' })).status, 201);
  t.equal((await server.fetch('/photos/ok.bin', { method: 'PUT', body: pattern(2 * 1024 * 1024, 1) })).status, 200);
  // Its third replicas may land after the answer (quorum is 2 of 3): wait for them before breaking that backend.
  const stored = (dir: string): number =>
    readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && !e.name.includes('.tmp'))
      .length;
  const placed = (await (await server.fetch('/photos/ok.bin?stat')).json()) as {
    chunks: Array<{ replicas: string[] }>;
  };
  const onThird = placed.chunks.filter((c) => c.replicas.includes('local-3')).length;
  for (let waited = 0; stored(join(server.home, 'data', '3')) < onThird && waited < 10_000; waited += 50) {
    await new Promise((r) => setTimeout(r, 50));
  }

  // The embedded default's third backend breaks: its directory becomes a file.
  rmSync(join(server.home, 'data', '3'), { recursive: true, force: true });
  mkdirSync(join(server.home, 'data'), { recursive: true });
  writeFileSync(join(server.home, 'data', '3'), 'not a directory');
  const put = await server.fetch('/photos/degraded.bin', { method: 'PUT', body: pattern(2 * 1024 * 1024 + 1, 2) });
  t.equal(put.status, 200, 'the put succeeds on W replicas');

  const deadline = Date.now() + 10_000;
  const warning =
    /^\S+Z WARN {2}server: stored photos\/degraded\.bin with \d of 3 chunk\(s\) under-replicated \(local-3: .*bucket=photos key=degraded\.bin/m;
  while (Date.now() < deadline && !warning.test(server.stderr())) await new Promise((r) => setTimeout(r, 100));
  t.match(server.stderr(), warning);
  t.notMatch(server.stderr(), /stored photos\/ok\.bin/, 'nothing about the healthy put');
});
