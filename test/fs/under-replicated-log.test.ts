import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { pattern } from '../fixtures/engine.js';
import { startMount } from '../fixtures/mount.js';

const run = promisify(execFile);

// A file closed on the mount whose chunks missed a backend is committed (W replicas) and logged
// as a warning in the mount's log, with a timestamp and a level.

t.test('the mount logs a commit that left chunks under-replicated', async (t) => {
  const m = await startMount(t);
  await run('mkdir', [join(m.dir, 'photos')]);
  writeFileSync(join(m.dir, 'photos', 'ok.bin'), pattern(64 * 1024, 1));
  // Its third replica may land after the close (quorum is 2 of 3): wait for it before breaking that backend.
  const stored = (dir: string): number =>
    readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && !e.name.includes('.tmp'))
      .length;
  for (let waited = 0; stored(join(m.home, 'data', '3')) === 0 && waited < 10_000; waited += 50) {
    await new Promise((r) => setTimeout(r, 50));
  }

  // The embedded default's third backend breaks: its directory becomes a file.
  rmSync(join(m.home, 'data', '3'), { recursive: true, force: true });
  mkdirSync(join(m.home, 'data'), { recursive: true });
  writeFileSync(join(m.home, 'data', '3'), 'not a directory');
  writeFileSync(join(m.dir, 'photos', 'degraded.bin'), pattern(2 * 1024 * 1024 + 1, 2));

  const warning =
    /^\S+Z WARN {2}mount: stored photos\/degraded\.bin with \d of 3 chunk\(s\) under-replicated \(local-3: .*bucket=photos key=degraded\.bin/m;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !warning.test(m.stderr())) await new Promise((r) => setTimeout(r, 100));
  t.match(m.stderr(), warning);
  t.notMatch(m.stderr(), /stored photos\/ok\.bin/, 'nothing about the file written while every backend worked');
});
