import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { CappedFile } from '../../src/log/capped-file.js';

function scratch(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'lilio-log-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('the file rotates before passing its cap and keeps only N old files', async (t) => {
  const dir = scratch(t);
  const path = join(dir, 'logs', 'mount.log');
  const file = new CappedFile(path, { maxBytes: 1000, keep: 2 });
  const line = `${'x'.repeat(99)}\n`;
  for (let i = 0; i < 100; i++) file.write(line);
  file.close();
  t.same(readdirSync(join(dir, 'logs')).sort(), ['mount.log', 'mount.log.1', 'mount.log.2']);
  for (const name of ['mount.log', 'mount.log.1', 'mount.log.2']) {
    t.ok(statSync(join(dir, 'logs', name)).size <= 1000, `${name} within the cap`);
  }
  // 10 000 bytes went in; what is kept is the newest, at most 3 × 1000.
  t.equal(readFileSync(path, 'utf8').length % 100, 0, 'lines are never cut');
});

t.test('appends to an existing file and counts its size', async (t) => {
  const dir = scratch(t);
  const path = join(dir, 'a.log');
  let file = new CappedFile(path, { maxBytes: 300, keep: 1 });
  file.write('first run\n'.repeat(29));
  file.close();
  file = new CappedFile(path, { maxBytes: 300, keep: 1 });
  file.write('second run\n');
  file.close();
  t.ok(existsSync(`${path}.1`), 'the earlier run was rotated away when the new line would pass the cap');
  t.equal(readFileSync(path, 'utf8'), 'second run\n');
});

t.test('keep 0: the file starts over', async (t) => {
  const dir = scratch(t);
  const path = join(dir, 'a.log');
  const file = new CappedFile(path, { maxBytes: 100, keep: 0 });
  for (let i = 0; i < 30; i++) file.write(`line ${i}\n`);
  file.close();
  t.same(readdirSync(dir), ['a.log']);
  t.ok(statSync(path).size <= 100);
});
