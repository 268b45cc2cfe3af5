import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const CHILD = fileURLToPath(new URL('../fixtures/put-stream.ts', import.meta.url));
const GiB = 1024 ** 3;

for (const mode of ['plain', 'encrypt']) {
  t.test(`putting 2 GiB from a stream (${mode}) keeps the process under 200 MB peak RSS`, async (t) => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', CHILD, String(2 * GiB), mode], { encoding: 'utf8' });
    const result = JSON.parse(out.trim().split('\n').pop()!);
    t.equal(result.size, 2 * GiB, 'every byte was stored');
    t.equal(result.chunks, 2048, '2,048 chunks of 1 MiB');
    t.ok(result.maxRssBytes < 200 * 1024 * 1024, `peak RSS ${(result.maxRssBytes / 1e6).toFixed(1)} MB`);
  });
}
