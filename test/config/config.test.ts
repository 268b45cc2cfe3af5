import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { loadMasterKey } from '../../src/config/master-key.js';
import { parseSize } from '../../src/config/size.js';

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'lilio-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const threeLocal = [
  { name: 'a', type: 'local', path: '/d/a' },
  { name: 'b', type: 'local', path: '/d/b' },
  { name: 'c', type: 'local', path: '/d/c' },
];

t.test('no config: the embedded default under $LILIO_HOME', async (t) => {
  const home = tempDir(t);
  const config = loadConfig({ env: { LILIO_HOME: home } });
  t.equal(config.source, 'embedded default');
  t.same(
    config.storages.map((s) => [s.name, s.type, s.type === 'local' && s.path]),
    [1, 2, 3].map((i) => [`local-${i}`, 'local', join(home, 'data', String(i))]),
  );
  t.same(config.metadata, { type: 'local', path: join(home, 'meta'), synchronous: 'normal' });
  t.same(config.quorum, { n: 3, w: 2, r: 2, readMode: 'first' });
  t.equal(config.chunkSize, 1024 * 1024);
  t.equal(config.ring.virtualNodes, 150);
  t.same(config.masterKey, { kind: 'file', path: join(home, 'master.key'), create: true });
});

t.test('quorum rules are enforced with a message naming the rule', async (t) => {
  t.throws(() => parseConfig({ storages: threeLocal, quorum: { n: 3, w: 1, r: 1 } }), {
    code: 'CONFIG',
    message: /quorum: W \+ R must be greater than N \(got N=3 W=1 R=1/,
  });
  t.throws(() => parseConfig({ storages: threeLocal.slice(0, 2), quorum: { n: 3, w: 2, r: 2 } }), {
    message: /quorum\.n: N=3 replicas need at least 3 storage backends, but 2 are configured/,
  });
  t.throws(() => parseConfig({ storages: threeLocal, quorum: { n: 3, w: 0, r: 3 } }), { message: /quorum\.w/ });
  t.throws(() => parseConfig({ storages: threeLocal, quorum: { n: 3, w: 4, r: 2 } }), {
    message: /W=4 is greater than N=3/,
  });
  t.ok(parseConfig({ storages: threeLocal, quorum: { n: 3, w: 3, r: 1 } }));
});

t.test('unknown keys and bad values are refused with the path of the field', async (t) => {
  t.throws(() => parseConfig({ storages: [{ ...threeLocal[0], colour: 'red' }] }), {
    message: /storages\[0\]: Unrecognized key: "colour"/,
  });
  t.throws(() => parseConfig({ storages: threeLocal, quorm: {} }), { message: /Unrecognized key: "quorm"/ });
  t.throws(() => parseConfig({ storages: threeLocal, chunkSize: '10KiB' }), {
    message: /chunkSize: must be between 64 KiB and 64 MiB/,
  });
  t.throws(() => parseConfig({ storages: threeLocal, chunkSize: 'lots' }), {
    message: /chunkSize: "lots" is not a size/,
  });
  t.throws(() => parseConfig({ storages: [{ name: 'x', type: 'floppy' }] }), { message: /storages\[0\]/ });
  t.throws(() => parseConfig({ storages: [...threeLocal, threeLocal[0]] }), {
    message: /storages\[3\]\.name: duplicate name "a"/,
  });
  t.equal(parseConfig({ storages: threeLocal, chunkSize: '4MiB' }).chunkSize, 4 * 1024 * 1024);
});

t.test('config files: --config wins over LILIO_CONFIG; relative paths are relative to the file', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'lilio.json');
  writeFileSync(
    file,
    JSON.stringify({
      metadata: { type: 'local', path: 'meta' },
      storages: threeLocal.map((s) => ({ ...s, path: `data/${s.name}` })),
    }),
  );
  const other = join(dir, 'other.json');
  writeFileSync(other, JSON.stringify({ metadata: { type: 'memory' }, storages: threeLocal }));
  const fromEnv = loadConfig({ env: { LILIO_CONFIG: file, LILIO_HOME: dir } });
  t.equal(fromEnv.source, file);
  t.equal(fromEnv.storages[0]!.type === 'local' && fromEnv.storages[0]!.path, join(dir, 'data/a'));
  t.same(fromEnv.metadata, { type: 'local', path: join(dir, 'meta'), synchronous: 'normal' });
  const fromFlag = loadConfig({ configPath: other, env: { LILIO_CONFIG: file, LILIO_HOME: dir } });
  t.equal(fromFlag.metadata.type, 'memory');
  t.throws(() => loadConfig({ configPath: join(dir, 'missing.json'), env: {} }), {
    code: 'CONFIG',
    message: /no such file/,
  });
  writeFileSync(join(dir, 'broken.json'), '{ "storages": [');
  t.throws(() => loadConfig({ configPath: join(dir, 'broken.json'), env: {} }), { message: /not valid JSON/ });
});

t.test('master key: generated once with mode 0600, from the environment, or refused', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'home', 'master.key');
  t.throws(
    () => loadMasterKey({ kind: 'file', path, create: true }, { create: false }),
    { code: 'CONFIG', message: /master\.key is missing.*LILIO_MASTER_KEY/ },
    'not generated when the engine says encrypted buckets exist',
  );
  t.throws(() => statSync(path), { code: 'ENOENT' });
  const key = loadMasterKey({ kind: 'file', path, create: true }, { create: true });
  t.equal(key.length, 32);
  t.equal(statSync(path).mode & 0o777, 0o600);
  t.ok(
    loadMasterKey({ kind: 'file', path, create: true }, { create: true }).equals(key),
    'the same key on the next run',
  );
  t.equal(Buffer.from(readFileSync(path, 'utf8').trim(), 'base64').length, 32);
  chmodSync(path, 0o644);
  t.throws(() => loadMasterKey({ kind: 'file', path, create: true }, { create: true }), {
    message: /readable by others/,
  });
  t.throws(() => loadMasterKey({ kind: 'file', path: join(dir, 'none'), create: false }, { create: true }), {
    code: 'CONFIG',
  });
  const fromEnv = Buffer.alloc(32, 7).toString('base64');
  t.ok(loadMasterKey({ kind: 'env', base64: fromEnv }, { create: false }).equals(Buffer.alloc(32, 7)));
  t.throws(() => loadMasterKey({ kind: 'env', base64: 'c2hvcnQ=' }, { create: false }), {
    message: /LILIO_MASTER_KEY/,
  });
  t.equal(loadConfig({ env: { LILIO_HOME: dir, LILIO_MASTER_KEY: fromEnv } }).masterKey.kind, 'env');
});

t.test('sizes', async (t) => {
  t.equal(parseSize('1MiB'), 1048576);
  t.equal(parseSize('64k'), 65536);
  t.equal(parseSize('1MB'), 1000000);
  t.equal(parseSize('123'), 123);
  t.equal(parseSize('1.5GiB'), 1.5 * 1024 ** 3);
  t.equal(parseSize('x'), undefined);
  t.equal(parseSize('5 parsecs'), undefined);
});
