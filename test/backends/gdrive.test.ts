import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { GDriveBackend, type GDriveBackendOptions } from '../../src/backends/gdrive.js';
import { BackendSet } from '../../src/engine/backend-set.js';
import { NoopCollector } from '../../src/metrics/noop.js';
import { backendContract, chunkId, collect } from '../contracts/backend.js';
import { startFakeDrive } from '../fixtures/fake-drive.js';
import { freePort } from '../fixtures/mount.js';

const dir = mkdtempSync(join(tmpdir(), 'lilio-gdrive-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const drive = await startFakeDrive(t);

let files = 0;
function credentialsFile(contents: object): string {
  const path = join(dir, `credentials-${++files}.json`);
  writeFileSync(path, JSON.stringify(contents, null, 2), { mode: 0o600 });
  return path;
}
const serviceAccount = credentialsFile(drive.oauth.serviceAccountKey());
const oauthUser = credentialsFile(drive.oauth.authorizedUser());

function options(overrides: Partial<GDriveBackendOptions> = {}): GDriveBackendOptions {
  return {
    name: 'drive',
    folderId: drive.folderId,
    credentialsFile: serviceAccount,
    rootUrl: drive.rootUrl,
    retryBaseMs: 5,
    ...overrides,
  };
}

function gdrive(t: Test, overrides: Partial<GDriveBackendOptions> = {}): GDriveBackend {
  const backend = new GDriveBackend(options(overrides));
  t.teardown(() => backend.close());
  // A fault a failing test did not use up must not leak into the next test.
  t.teardown(() => drive.clearFaults());
  return backend;
}

const countRequests = (method: string, path: RegExp) =>
  drive.requests.filter((r) => r.method === method && path.test(r.path)).length;

/** Each contract subtest gets its own folder: an empty backend. */
for (const [label, credentials] of [
  ['service account', serviceAccount],
  ['OAuth refresh token', oauthUser],
] as const) {
  t.test(`gdrive backend contract (fake Drive, ${label})`, async (t) => {
    backendContract(t, async () => {
      const folderId = drive.addFolder(`contract-${randomBytes(4).toString('hex')}`);
      return {
        backend: new GDriveBackend(options({ folderId, credentialsFile: credentials })),
        cleanup: async () => {},
      };
    });
  });
}

t.test('both credential kinds really fetched tokens from the token endpoint', async (t) => {
  t.ok(
    drive.oauth.grants.some((g) => g.startsWith('jwt-bearer lilio-')),
    'service account: signed JWT exchanged',
  );
  t.ok(
    drive.oauth.grants.some((g) => g.startsWith('refresh_token ')),
    'OAuth: refresh token exchanged',
  );
  const uploads = drive.requests.filter((r) => r.path === '/upload/drive/v3/files');
  t.ok(uploads.length > 0 && uploads.every((r) => r.query.get('uploadType') === 'multipart'), 'multipart uploads');
});

t.test('chunks are files named by id in the folder; list pages through them', async (t) => {
  const folderId = drive.addFolder('paged');
  const backend = gdrive(t, { folderId, listPageSize: 7 });
  const ids = Array.from({ length: 20 }, chunkId);
  for (const id of ids) await backend.put(id, Buffer.from(id));
  drive.addFile('README.txt', Buffer.from('not a chunk'), { parent: folderId });
  const before = countRequests('GET', /^\/drive\/v3\/files$/);
  const listed = await collect(backend.list());
  t.same(listed.sort(), [...ids].sort(), 'every chunk once, strays skipped');
  t.equal(countRequests('GET', /^\/drive\/v3\/files$/) - before, 3, '21 names over 3 pages of 7');
});

t.test('get uses the cached file id; a stale cache entry is looked up again', async (t) => {
  const backend = gdrive(t);
  const id = chunkId();
  await backend.put(id, Buffer.from('cached'));
  const lookups = () => drive.requests.filter((r) => r.query.get('q')?.startsWith(`name = '${id}'`)).length;
  const afterPut = lookups();
  t.equal((await backend.get(id)).toString(), 'cached');
  t.equal(lookups(), afterPut, 'no name query for a cached chunk');

  // Another process replaces the chunk: our cached file id is gone.
  const other = gdrive(t, { name: 'other' });
  await other.put(id, Buffer.from('replaced'));
  t.equal((await backend.get(id)).toString(), 'replaced', 'stale entry: 404, look up, read the new file');
  t.equal(lookups(), afterPut + 2, 'one lookup by the other backend, one by the stale reader');

  // A one-off 404 on a file that exists: looked up again, then read.
  drive.inject({ method: 'GET', path: /^\/drive\/v3\/files\/[^/]+$/, status: 404, reason: 'notFound' });
  t.equal((await backend.get(id)).toString(), 'replaced');

  await other.delete(id);
  await t.rejects(backend.get(id), { code: 'NOT_FOUND', message: `backend "drive" has no chunk ${id}` });
});

t.test('duplicate names: reads pick the newest, a re-put leaves one, delete removes all', async (t) => {
  const backend = gdrive(t);
  const id = chunkId();
  drive.addFile(id, Buffer.from('older'), { createdTime: '2020-01-01T00:00:00.000Z' });
  drive.addFile(id, Buffer.from('newer'), { createdTime: '2020-06-01T00:00:00.000Z' });
  t.equal((await backend.get(id)).toString(), 'newer');
  t.equal(await backend.stat(id), 5);
  t.same(await collect(backend.list()), [id], 'listed once');

  await backend.put(id, Buffer.from('re-put'));
  const named = drive.files().filter((f) => f.name === id);
  t.equal(named.length, 1, 'one file of that name is left');
  t.equal(named[0]?.data.toString(), 're-put');

  drive.addFile(id, Buffer.from('another duplicate'));
  await backend.delete(id);
  t.equal(drive.files().filter((f) => f.name === id).length, 0, 'every file of the name is deleted');
  t.equal(await backend.stat(id), undefined);
});

t.test('listEntries pages through the folder: chunk files only, a duplicated name once, at its newest', async (t) => {
  const folderId = drive.addFolder(`entries-${randomBytes(4).toString('hex')}`);
  const backend = gdrive(t, { folderId, listPageSize: 3 });
  const ids = Array.from({ length: 8 }, chunkId);
  for (const id of ids) await backend.put(id, Buffer.from(id));
  const twice = chunkId();
  drive.addFile(twice, Buffer.from('old copy'), { parent: folderId, createdTime: '2020-01-01T00:00:00.000Z' });
  drive.addFile(twice, Buffer.from('newer'), { parent: folderId, modifiedTime: '2021-03-04T05:06:07.000Z' });
  drive.addFile('notes.txt', Buffer.from('not a chunk'), { parent: folderId });
  drive.addFile(chunkId(), Buffer.from('another folder'));
  const lists = () => drive.requests.filter((r) => r.path === '/drive/v3/files' && r.query.has('pageToken')).length;
  const before = lists();
  const entries = await collect(backend.listEntries());
  t.ok(lists() - before >= 3, 'followed nextPageToken over several pages');
  t.same(entries.map((e) => e.id).sort(), [...ids, twice].sort(), 'every chunk once, nothing else');
  const dup = entries.find((e) => e.id === twice)!;
  t.equal(dup.modifiedMs, Date.parse('2021-03-04T05:06:07.000Z'), 'the newest copy stands for the name');
  t.equal(dup.size, 5);
  t.ok(entries.filter((e) => e.id !== twice).every((e) => Math.abs(e.modifiedMs - Date.now()) < 60_000));
});

t.test('rate limits and 5xx are retried with backoff; persistent ones are UNAVAILABLE', async (t) => {
  const backend = gdrive(t);
  const id = chunkId();
  const creates = () => countRequests('POST', /^\/upload\/drive\/v3\/files$/);
  let before = creates();
  drive.inject({ method: 'POST', status: 403, reason: 'userRateLimitExceeded', message: 'User Rate Limit Exceeded' });
  drive.inject({ method: 'POST', status: 429, reason: 'rateLimitExceeded', message: 'Rate Limit Exceeded' });
  await backend.put(id, Buffer.from('after two rate limits'));
  t.equal(creates() - before, 3, 'two refusals, then the upload');
  t.equal((await backend.get(id)).toString(), 'after two rate limits');
  t.equal(drive.files().filter((f) => f.name === id).length, 1);

  drive.inject({ method: 'GET', status: 500, reason: 'backendError', message: 'Backend Error' });
  drive.inject({ method: 'GET', status: 503, reason: 'backendError', message: 'Service Unavailable' });
  t.equal(await backend.stat(id), 21, 'two 5xx, then the answer');

  before = creates();
  drive.inject({ method: 'POST', status: 403, reason: 'rateLimitExceeded', message: 'Rate Limit Exceeded', times: 10 });
  await t.rejects(backend.put(chunkId(), Buffer.from('x')), {
    code: 'UNAVAILABLE',
    message: /rateLimitExceeded \(HTTP 403\): Rate Limit Exceeded/,
  });
  t.equal(creates() - before, 4, 'gave up after 4 attempts');
  drive.inject({ method: 'GET', status: 500, reason: 'backendError', message: 'Backend Error', times: 10 });
  await t.rejects(backend.get(chunkId()), { code: 'UNAVAILABLE', message: /backendError \(HTTP 500\)/ });
  drive.inject({ method: 'POST', status: 429, reason: 'rateLimitExceeded', retryAfterSeconds: 60 });
  await t.rejects(backend.put(chunkId(), Buffer.from('x')), { code: 'UNAVAILABLE' }, 'a long Retry-After fails over');
});

t.test('permission, quota and missing-file errors map to their codes', async (t) => {
  const backend = gdrive(t);
  drive.inject({ method: 'POST', status: 403, reason: 'insufficientPermissions', message: 'Insufficient Permission' });
  await t.rejects(backend.put(chunkId(), Buffer.from('x')), { code: 'PERMISSION', message: /insufficientPermissions/ });
  drive.inject({ method: 'POST', status: 403, reason: 'storageQuotaExceeded', message: 'The user has exceeded quota' });
  await t.rejects(backend.put(chunkId(), Buffer.from('x')), { code: 'NO_SPACE', message: /storageQuotaExceeded/ });

  const missingFolder = gdrive(t, { folderId: 'no-such-folder' });
  await t.rejects(missingFolder.put(chunkId(), Buffer.from('x')), {
    code: 'UNAVAILABLE',
    message: /folder not found \(or not shared with this account\)/,
  });
  const health = await missingFolder.health();
  t.equal(health.ok, false);
  t.match(health.error, /folder not found \(or not shared with this account\)/);
  const notFolder = gdrive(t, { folderId: drive.addFile('plain.txt', Buffer.from('x')) });
  t.match((await notFolder.health()).error, /not a folder/);
});

t.test('bad credentials are clear PERMISSION or CONFIG errors', async (t) => {
  const stranger = credentialsFile({
    ...drive.oauth.serviceAccountKey(),
    client_email: 'nobody@x.iam.gserviceaccount.com',
  });
  await t.rejects(gdrive(t, { credentialsFile: stranger }).get(chunkId()), {
    code: 'PERMISSION',
    message: /cannot get an access token: invalid_grant/,
  });
  const revoked = credentialsFile({ ...drive.oauth.authorizedUser(), refresh_token: '1//revoked' });
  await t.rejects(gdrive(t, { credentialsFile: revoked }).stat(chunkId()), {
    code: 'PERMISSION',
    message: /invalid_grant: Token has been expired or revoked/,
  });
  const health = await gdrive(t, { credentialsFile: revoked }).health();
  t.equal(health.ok, false);
  t.match(health.error, /invalid_grant/);

  await t.rejects(gdrive(t, { credentialsFile: join(dir, 'missing.json') }).get(chunkId()), {
    code: 'CONFIG',
    message: /cannot read Drive credentials .*missing\.json: no such file/,
  });
  const junk = credentialsFile({ type: 'service_account', client_email: 'a@b', private_key: 'not a key' });
  await t.rejects(gdrive(t, { credentialsFile: junk }).get(chunkId()), {
    code: 'CONFIG',
    message: /private_key is not a PEM private key/,
  });
  const other = credentialsFile({ installed: { client_id: 'x' } });
  await t.rejects(gdrive(t, { credentialsFile: other }).get(chunkId()), {
    code: 'CONFIG',
    message: /neither a service-account key .* nor an OAuth refresh token/,
  });

  // A token revoked while the backend still holds it: Drive answers 401.
  const backend = gdrive(t);
  t.equal(await backend.stat(chunkId()), undefined, 'a token was fetched');
  drive.oauth.revokeAccessTokens();
  await t.rejects(backend.get(chunkId()), {
    code: 'PERMISSION',
    message: /authError \(HTTP 401\): Invalid Credentials/,
  });
});

t.test('a hung request: the deadline fires TIMEOUT and the request is cancelled', async (t) => {
  const backend = gdrive(t);
  const id = chunkId();
  await backend.put(id, Buffer.from('x'));
  const within = (promise: Promise<void>) =>
    Promise.race([promise.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5_000))]);

  // The deadline is generous so that the request surely reaches the fake before it fires, even on a busy machine.
  const download = drive.hang('GET', /^\/drive\/v3\/files\/[^/]+$/);
  const set = new BackendSet([backend], new NoopCollector(), { timeoutMs: 1_000, probeIntervalMs: 60_000 });
  await t.rejects(set.get('drive', id), { code: 'TIMEOUT' });
  t.ok(await within(download.closed), 'the deadline closed the hung download');

  const lookup = drive.hang('GET', /^\/drive\/v3\/files$/);
  const controller = new AbortController();
  const pending = backend.stat(chunkId(), { signal: controller.signal });
  await lookup.arrived;
  controller.abort(new Error('no longer needed'));
  await t.rejects(pending, { code: 'TIMEOUT', message: /aborted \(no longer needed\)/ });
  t.ok(await within(lookup.closed), 'the abort closed the hung lookup');
  t.equal((await backend.get(id)).toString(), 'x', 'the backend works on afterwards');
});

t.test('info reports the storage quota', async (t) => {
  const backend = gdrive(t);
  const info = await backend.info();
  t.match(info, { name: 'drive', type: 'gdrive', totalBytes: 15 * 1024 ** 3 });
  t.ok(info.freeBytes !== undefined && info.freeBytes < info.totalBytes!, 'usage counted');
  t.match(info.location, /drive folder .* at http:\/\/127\.0\.0\.1/);
  drive.quotaLimit = undefined;
  t.teardown(() => {
    drive.quotaLimit = 15 * 1024 ** 3;
  });
  t.equal((await backend.info()).totalBytes, undefined, 'an unlimited quota reports no capacity');
});

t.test('an unreachable API is UNAVAILABLE after retries; an abort cuts a backoff short', async (t) => {
  const port = await freePort();
  const unreachable = gdrive(t, { rootUrl: `http://127.0.0.1:${port}/` });
  await t.rejects(unreachable.get(chunkId()), { code: 'UNAVAILABLE', message: /ECONNREFUSED/ });

  const patient = gdrive(t, { retryBaseMs: 5_000 });
  drive.inject({ method: 'GET', status: 503, reason: 'backendError', message: 'Service Unavailable' });
  const controller = new AbortController();
  const pending = patient.stat(chunkId(), { signal: controller.signal });
  setTimeout(() => controller.abort(new Error('deadline')), 200);
  await t.rejects(pending, { code: 'TIMEOUT', message: /aborted \(deadline\)/ });

  const closed = gdrive(t);
  await closed.close();
  await t.rejects(closed.get(chunkId()), { code: 'UNAVAILABLE', message: /closed/ });
});

t.test('a put from shared memory (the engine pools SharedArrayBuffer chunks) stores exactly its bytes', async (t) => {
  const backend = gdrive(t);
  const shared = Buffer.from(new SharedArrayBuffer(300_000));
  randomBytes(shared.length).copy(shared);
  const view = shared.subarray(1000, 201_000);
  const id = chunkId();
  await backend.put(id, view);
  const expected = Buffer.from(view);
  shared.fill(0); // the pool reuses the buffer once the put has resolved
  t.ok((await backend.get(id)).equals(expected));
});
