import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const CHILD = fileURLToPath(new URL('../fixtures/put-stream.mjs', import.meta.url));
const GiB = 1024 ** 3;
// The child runs as users run Lilio: tap's loaders and coverage (NODE_OPTIONS, NODE_V8_COVERAGE)
// would load into it and each of its threads, and be measured instead (~75 MB more). Filtering
// the environment is not enough: tap's process tracker wraps child_process and puts its loader
// back into NODE_OPTIONS of every child it spawns, so the child goes through `env -u NODE_OPTIONS`.
const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(NODE_|_?TAP)/.test(name)));

for (const mode of ['plain', 'encrypt']) {
  t.test(`putting 2 GiB from a stream (${mode}) keeps the process under 200 MB peak RSS`, async (t) => {
    const out = execFileSync('env', ['-u', 'NODE_OPTIONS', process.execPath, CHILD, String(2 * GiB), mode], {
      encoding: 'utf8',
      env,
    });
    const result = JSON.parse(out.trim().split('\n').pop()!);
    t.equal(result.size, 2 * GiB, 'every byte was stored');
    t.equal(result.chunks, 2048, '2,048 chunks of 1 MiB');
    t.ok(result.maxRssBytes < 200 * 1024 * 1024, `peak RSS ${(result.maxRssBytes / 1e6).toFixed(1)} MB`);
  });
}
