import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { LocalMetadataStore } from '../../src/meta/local.js';
import { bucketRecord } from '../contracts/meta-fixtures.js';
import { runCli } from '../fixtures/cli.js';

const modeOf = (path: string) => (statSync(path).mode & 0o777).toString(8);

t.test('a fresh $LILIO_HOME keeps keys and metadata to its owner', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'lilio-modes-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  // Not yet existing: Lilio creates it. Every mode is checked against the default umask's 0755/0644.
  const home = join(root, 'home');
  const env = { LILIO_HOME: home, LILIO_CONFIG: '', LILIO_MASTER_KEY: '' };
  const created = await runCli(['bucket', 'create', 'secret', '--encrypt'], env);
  t.equal(created.code, 0, created.stderr);
  t.equal((await runCli(['put', '-', 'secret/a'], env, Buffer.alloc(100_000, 1))).code, 0);
  t.equal(modeOf(home), '700', '$LILIO_HOME');
  t.equal(modeOf(join(home, 'meta')), '700', 'the metadata directory');
  t.equal(modeOf(join(home, 'meta', 'lilio.db')), '600', 'the SQLite database');
  t.equal(modeOf(join(home, 'master.key')), '600', 'the master key');
  t.equal(modeOf(join(home, 'data')), '700', 'the data directory');

  // The WAL and shared-memory files exist only while a connection is open.
  const store = LocalMetadataStore.open({ path: join(home, 'meta') });
  await store.createBucket(bucketRecord('more'));
  t.equal(modeOf(join(home, 'meta', 'lilio.db-wal')), '600', 'the WAL');
  t.equal(modeOf(join(home, 'meta', 'lilio.db-shm')), '600', 'the shared-memory index');
  await store.close();
});

t.test('metadata files left wider by older versions are tightened when opened', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'lilio-modes-')), 'meta');
  t.teardown(() => rmSync(join(dir, '..'), { recursive: true, force: true }));
  const first = LocalMetadataStore.open({ path: dir });
  await first.createBucket(bucketRecord('photos'));
  chmodSync(dir, 0o755);
  for (const suffix of ['', '-wal', '-shm']) chmodSync(join(dir, `lilio.db${suffix}`), 0o644);
  // A second connection while the first still holds the WAL open: all three files exist.
  const second = LocalMetadataStore.open({ path: dir });
  t.equal(modeOf(dir), '700');
  for (const suffix of ['', '-wal', '-shm'])
    t.equal(modeOf(join(dir, `lilio.db${suffix}`)), '600', `lilio.db${suffix}`);
  t.ok(await second.getBucket('photos'), 'the store still works');
  await second.close();
  await first.close();
});
