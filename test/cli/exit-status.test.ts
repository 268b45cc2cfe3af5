import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli } from '../fixtures/cli.js';

// A read that fails must say so: one line on stderr and status 1, also when stdout is a pipe.
// The regression: with its chunk threads idle and unreferenced, the process could run out of
// work while closing them and exit 0 with nothing on stderr, in the middle of the error path.

t.test('a strict read short of R verified replicas fails loudly, every time', async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'lilio-exit-'));
  t.teardown(() => rmSync(home, { recursive: true, force: true }));
  const storages = [1, 2, 3].map((i) => ({ name: `disk-${i}`, type: 'local', path: `d${i}` }));
  const config = (readMode: string) => ({
    metadata: { type: 'local', path: 'meta' },
    storages,
    quorum: { n: 3, w: 2, r: 2, readMode },
  });
  writeFileSync(join(home, 'first.json'), JSON.stringify(config('first')));
  writeFileSync(join(home, 'strict.json'), JSON.stringify(config('strict')));
  const env = { LILIO_HOME: home, LILIO_CONFIG: join(home, 'first.json'), LILIO_MASTER_KEY: '' };
  const data = randomBytes(3 * 1024 * 1024 + 5);
  writeFileSync(join(home, 'in.bin'), data);
  t.equal((await runCli(['bucket', 'create', 'exit'], env)).code, 0);
  const put = await runCli(['put', join(home, 'in.bin'), 'exit/file.bin'], env);
  t.equal(put.code, 0, put.stderr);
  // Two of the three backends become unusable (a file where their directory was), so no read
  // repair can heal them between rounds.
  for (const dir of ['d2', 'd3']) {
    rmSync(join(home, dir), { recursive: true, force: true });
    writeFileSync(join(home, dir), 'not a directory');
  }
  t.ok(readdirSync(join(home, 'd1')).length > 0, 'one replica of each chunk is left');

  const first = await runCli(['get', 'exit/file.bin', '-'], env);
  t.equal(first.code, 0, first.stderr);
  t.ok(first.stdout.equals(data), 'the first verified replica is enough by default');
  for (let round = 1; round <= 3; round++) {
    const strict = await runCli(['get', 'exit/file.bin', '-', '--config', join(home, 'strict.json')], env);
    t.equal(strict.code, 1, `round ${round}: status 1`, { stderr: strict.stderr, out: strict.stdout.length });
    t.match(strict.stderr, /quorum not reached \(1\/2\)/, `round ${round}: the reason on stderr`);
  }
});
