import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createBackend } from '../../src/backends/index.js';
import { loadConfig, parseConfig } from '../../src/config/load.js';

const s3 = { name: 's3', type: 's3', region: 'us-east-1', bucket: 'b' };
const gdrive = { name: 'drive', type: 'gdrive', folderId: '1AbC-d_9', credentialsFile: 'key.json' };
const parse = (storage: object) => parseConfig({ storages: [storage], quorum: { n: 1, w: 1, r: 1 } }).storages[0];

t.test('s3 entries: defaults, credentials together, URLs checked', async (t) => {
  t.same(parse(s3), { ...s3, prefix: '', forcePathStyle: false });
  const full = {
    ...s3,
    endpoint: 'https://minio.example:9000',
    prefix: 'lilio/',
    forcePathStyle: true,
    accessKeyId: 'AKIA',
    secretAccessKey: 'secret',
    sessionToken: 'token',
  };
  t.same(parse(full), full);
  t.throws(() => parse({ ...s3, accessKeyId: 'AKIA' }), {
    code: 'CONFIG',
    message: /storages\[0\]\.accessKeyId: accessKeyId and secretAccessKey go together/,
  });
  t.throws(() => parse({ ...s3, sessionToken: 't' }), { message: /storages\[0\]\.sessionToken: sessionToken needs/ });
  t.throws(() => parse({ ...s3, endpoint: 'ftp://x' }), { message: /storages\[0\]\.endpoint/ });
  t.throws(() => parse({ ...s3, bucket: '' }), { message: /storages\[0\]\.bucket/ });
  t.throws(() => parse({ ...s3, acl: 'public-read' }), { message: /storages\[0\].*acl/ }, 'unknown keys refused');
  const backend = createBackend(parse(full)!);
  t.match(backend, { name: 's3', type: 's3', bucket: 'b', prefix: 'lilio/' });
  t.match(await backend.info(), { location: 's3://b/lilio/ at https://minio.example:9000' });
  await backend.close();
});

t.test('gdrive entries: folder ids cannot inject into queries; the key path is relative to the file', async (t) => {
  t.same(parse(gdrive), gdrive);
  t.throws(() => parse({ ...gdrive, folderId: "x' or name contains '" }), {
    message: /storages\[0\]\.folderId: must be a Drive folder id/,
  });
  t.throws(() => parse({ ...gdrive, rootUrl: 'not a url' }), { message: /storages\[0\]\.rootUrl/ });
  t.throws(() => parse({ ...gdrive, credentialsFile: undefined }), { message: /storages\[0\]\.credentialsFile/ });

  const dir = mkdtempSync(join(tmpdir(), 'lilio-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'config.json');
  writeFileSync(path, JSON.stringify({ storages: [gdrive], quorum: { n: 1, w: 1, r: 1 } }));
  const config = loadConfig({ configPath: path, env: { LILIO_HOME: dir } });
  t.match(config.storages[0], { type: 'gdrive', credentialsFile: join(dir, 'key.json') });
  const backend = createBackend(config.storages[0]!);
  t.match(backend, { name: 'drive', type: 'gdrive', folderId: '1AbC-d_9' });
  const health = await backend.health();
  t.equal(health.ok, false, 'no key file: not healthy');
  t.match(health.error, /cannot read Drive credentials .*key\.json: no such file/);
  await backend.close();
});
