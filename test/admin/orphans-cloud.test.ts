import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { collectOrphans } from '../../src/admin/orphans.js';
import type { StorageBackend } from '../../src/backends/backend.js';
import { Lilio } from '../../src/engine/lilio.js';
import { chunkId, collect } from '../contracts/backend.js';
import { pattern, pieces, testConfig } from '../fixtures/engine.js';
import { startFakeDrive } from '../fixtures/fake-drive.js';
import { startS3Server } from '../fixtures/s3.js';

// The orphan scan over the cloud backends: S3 (s3rver) and Google Drive (the fake, through googleapis)
// report chunk ages through listEntries, so a crashed upload's chunks there are collected too.
const HOUR = 3_600_000;
const CHUNK = 64 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'lilio-orphans-cloud-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const s3 = await startS3Server(t, ['lilio-orphans']);
const drive = await startFakeDrive(t);
const credentialsFile = join(dir, 'drive-key.json');
writeFileSync(credentialsFile, JSON.stringify(drive.oauth.serviceAccountKey()));

const lilio = await Lilio.open(
  testConfig({
    storages: [
      s3.storage('s3', 'lilio-orphans', 'chunks/'),
      { name: 'drive', type: 'gdrive', folderId: drive.folderId, credentialsFile, rootUrl: drive.rootUrl },
      { name: 'disk', type: 'local', path: join(dir, 'disk') },
    ],
    chunkSize: CHUNK,
    inlineThreshold: 0,
    backends: { timeoutMs: 10_000, probeIntervalMs: 1_000 },
  }),
);
t.teardown(() => lilio.close());

/** s3rver reports a key's LastModified from its object file's mtime: set it back. */
function ageOnS3(id: string, ms: number): void {
  const when = new Date(Date.now() - ms);
  utimesSync(join(s3.directory, 'lilio-orphans', 'chunks', `${id}._S3rver_object`), when, when);
}

const held = async (name: string) => new Set(await collect(lilio.backends.backend(name)!.list()));

t.test(
  'unreferenced chunks on S3 and Drive older than the grace period are deleted; live and young ones stay',
  async (t) => {
    await lilio.createBucket('bkt');
    const live = await lilio.putObject('bkt', 'live', pieces(pattern(2 * CHUNK)));
    await lilio.chunks.drain();
    const s3Backend = lilio.backends.backend('s3') as StorageBackend;
    // Left by a writer that crashed two hours ago...
    const crashed = chunkId();
    await s3Backend.put(crashed, Buffer.from('half an upload'));
    ageOnS3(crashed, 2 * HOUR);
    const old = new Date(Date.now() - 2 * HOUR).toISOString();
    drive.addFile(crashed, Buffer.from('half an upload'), { createdTime: old });
    // ...and by an upload in flight now.
    const young = chunkId();
    await s3Backend.put(young, Buffer.from('being written'));
    drive.addFile(young, Buffer.from('being written'));
    // Live chunks as old as the crashed ones: referenced, so kept whatever their age.
    for (const chunk of live.chunks) ageOnS3(chunk.id, 2 * HOUR);

    const dry = await collectOrphans(lilio, { graceMs: HOUR, dryRun: true });
    t.same(dry.skipped, [], 'every backend was scanned: s3 and gdrive report ages');
    t.equal(dry.orphans, 2, 'the crashed chunk on s3 and on drive');
    t.ok((await held('s3')).has(crashed), 'a dry run deletes nothing');

    const report = await collectOrphans(lilio, { graceMs: HOUR });
    t.equal(report.orphans, 2);
    t.equal(report.failed, 0);
    t.equal(report.young, 2 + 2 * live.chunks.length, 'the in-flight chunk on both, live chunks on drive and disk');
    for (const name of ['s3', 'drive']) {
      const ids = await held(name);
      t.notOk(ids.has(crashed), `${name}: the crashed upload's chunk is gone`);
      t.ok(ids.has(young), `${name}: the in-flight upload is untouched`);
      for (const chunk of live.chunks) t.ok(ids.has(chunk.id), `${name}: live chunk kept`);
    }
    t.notOk(
      drive.files().some((f) => f.name === crashed),
      'deleted on the Drive side too',
    );
  },
);
