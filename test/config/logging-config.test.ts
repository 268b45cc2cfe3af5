import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { logOptions } from '../../src/cli/logging.js';
import { loadConfig, parseConfig } from '../../src/config/load.js';

const storages = [{ name: 'a', type: 'local', path: 'a' }];

t.test('the logging section: defaults, sizes, a file relative to the config', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lilio-logging-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'lilio.json');
  writeFileSync(
    file,
    JSON.stringify({
      storages,
      quorum: { n: 1, w: 1, r: 1 },
      logging: { level: 'warn', format: 'json', file: 'logs/lilio.log', maxSize: '1MiB', keep: 2 },
    }),
  );
  const config = loadConfig({ configPath: file, env: { LILIO_HOME: dir } });
  t.same(config.logging, {
    level: 'warn',
    format: 'json',
    file: join(dir, 'logs/lilio.log'),
    maxSize: 1024 * 1024,
    keep: 2,
  });

  const defaults = parseConfig({ storages, quorum: { n: 1, w: 1, r: 1 } }).logging;
  t.same(defaults, { maxSize: 10 * 1024 * 1024, keep: 3 });

  // Flags win over the config; the config fills what the flags leave out.
  t.same(logOptions('server', { logLevel: 'debug' }, config.logging), {
    name: 'server',
    level: 'debug',
    format: 'json',
    file: join(dir, 'logs/lilio.log'),
    maxBytes: 1024 * 1024,
    keep: 2,
  });
});

t.test('bad logging settings are refused with the path to them', async (t) => {
  for (const [logging, message] of [
    [{ level: 'loud' }, /logging\.level/],
    [{ format: 'xml' }, /logging\.format/],
    [{ maxSize: '1KiB' }, /logging\.maxSize: must be at least 64 KiB/],
    [{ keep: -1 }, /logging\.keep/],
    [{ colour: true }, /logging/],
  ] as const) {
    t.throws(
      () => parseConfig({ storages, quorum: { n: 1, w: 1, r: 1 }, logging }),
      { message },
      JSON.stringify(logging),
    );
  }
});
