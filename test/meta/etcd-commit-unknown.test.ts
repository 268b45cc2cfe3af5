import t from 'tap';
import { CommitUnknownError } from '../../src/core/errors.js';
import { createClient, neverSent } from '../../src/meta/etcd-client.js';
import { bucketRecord, objectDraft } from '../contracts/meta-fixtures.js';
import { startEtcd } from '../fixtures/etcd.js';
import { lossyEtcd } from '../fixtures/lossy-etcd.js';
import { freePort } from '../fixtures/mount.js';
import { startProxy } from '../fixtures/tcp-proxy.js';

// The etcd store tells "the commit certainly never reached etcd" (a plain failure: nothing
// changed) from "it was sent and its answer was lost" (CommitUnknownError), with real failures
// produced by a real etcd behind a TCP proxy.

const etcd = await startEtcd(t);
const OUTAGE_MS = 2_500;

t.test('what a failed call proves about a transaction, on real gRPC failures', async (t) => {
  const options = (endpoint: string) => ({
    endpoints: [endpoint],
    prefix: '/p',
    dialTimeoutMs: 1_000,
    requestTimeoutMs: 1_000,
    maxTxnOps: 128,
  });
  const txn = { success: [{ request_put: { key: Buffer.from('/p/x'), value: Buffer.from('1') } }] };
  const failure = (promise: Promise<unknown>) =>
    promise.then(
      () => t.fail('should have failed'),
      (err: unknown) => err,
    );

  const nobody = createClient(options(`http://127.0.0.1:${await freePort()}`));
  t.teardown(() => nobody.close());
  const refused = await failure(nobody.kv.txn(txn, { deadline: Date.now() + 1_000 }));
  t.ok(neverSent(refused), `nothing listening: never sent (${(refused as Error).message})`);

  const proxy = await startProxy(t, etcd.endpoints[0]!);
  const client = createClient(options(proxy.endpoint));
  t.teardown(() => client.close());
  await client.kv.txn(txn, { deadline: Date.now() + 1_000 });
  proxy.setMode('swallow');
  const swallowed = await failure(client.kv.txn(txn, { deadline: Date.now() + 1_000 }));
  t.notOk(neverSent(swallowed), `answer lost: maybe applied (${(swallowed as Error).message})`);
  proxy.setMode('pass');

  // Let the member's rest (after two failures) pass, then cut the connection under a call.
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  await client.kv.txn(txn, { deadline: Date.now() + 1_000 });
  proxy.setMode('swallow');
  const call = failure(client.kv.txn(txn, { deadline: Date.now() + 3_000 }));
  setTimeout(() => proxy.setMode('refuse'), 50);
  const cut = await call;
  t.notOk(neverSent(cut), `connection cut under the call: maybe applied (${(cut as Error).message})`);
  const down = await failure(client.kv.txn(txn, { deadline: Date.now() + 1_000 }));
  t.ok(neverSent(down), `no connection to send it on: never sent (${(down as Error).message})`);
});

t.test('a put whose answer is lost for longer than the request timeout is CommitUnknownError', async (t) => {
  const { store, loseNextCommit } = await lossyEtcd(t, etcd);
  await store.createBucket(bucketRecord('photos'));

  let restored = loseNextCommit('swallow', OUTAGE_MS);
  const landed = objectDraft('photos', 'landed');
  await t.rejects(store.putObject(landed, 'absent'), CommitUnknownError, 'applied, answer lost');
  await restored;
  t.equal((await store.getObject('photos', 'landed'))?.versionId, landed.versionId, 'it did land');

  restored = loseNextCommit('blackhole', OUTAGE_MS);
  await t.rejects(store.putObject(objectDraft('photos', 'lost'), 'absent'), CommitUnknownError, 'never arrived');
  await restored;
  t.equal(await store.getObject('photos', 'lost'), undefined, 'it did not land');
});

t.test('a put etcd was unreachable for before it was sent is a plain failure, or is re-sent', async (t) => {
  const { store, loseNextCommit } = await lossyEtcd(t, etcd, { requestTimeoutMs: 3_000 });
  await store.createBucket(bucketRecord('photos'));

  let restored = loseNextCommit('refuse', 5_000);
  await t.rejects(
    store.putObject(objectDraft('photos', 'refused'), 'absent'),
    { code: 'UNAVAILABLE' },
    'never sent: nothing changed, and the writer may delete its chunks',
  );
  await restored;
  t.equal(await store.getObject('photos', 'refused'), undefined);

  await new Promise((resolve) => setTimeout(resolve, 1_200));
  restored = loseNextCommit('refuse', 800);
  const draft = objectDraft('photos', 'resent');
  const record = await store.putObject(draft, 'absent');
  await restored;
  t.equal(record.versionId, draft.versionId, 're-sent once etcd was back, within the deadline');
  t.equal((await store.getObject('photos', 'resent'))?.versionId, draft.versionId);
});

t.test('deletes and renames whose answers are lost are CommitUnknownError naming their record', async (t) => {
  const { store, loseNextCommit } = await lossyEtcd(t, etcd);
  await store.createBucket(bucketRecord('photos'));
  const a = await store.putObject(objectDraft('photos', 'dir/a'), 'absent');

  let restored = loseNextCommit('blackhole', OUTAGE_MS);
  const renaming = await store.renameObject('photos', 'dir/a', 'dir/b', { replace: false }).catch((e: unknown) => e);
  await restored;
  t.type(renaming, CommitUnknownError);
  t.equal((renaming as CommitUnknownError).subject?.versionId, a.versionId, 'names the record it moved');

  restored = loseNextCommit('swallow', OUTAGE_MS);
  const deleting = await store.deleteObject('photos', 'dir/a').catch((e: unknown) => e);
  await restored;
  t.type(deleting, CommitUnknownError);
  t.equal((deleting as CommitUnknownError).subject?.versionId, a.versionId, 'names the record it removed');
  t.equal(await store.getObject('photos', 'dir/a'), undefined, 'the delete landed');

  // After an outage the client skips the member "for a moment": that moment can outlast one
  // request deadline, so the next call is tried until the member is back (bounded).
  const once = async <T>(call: () => Promise<T>): Promise<T> => {
    for (const deadline = Date.now() + 20_000; ; ) {
      try {
        return await call();
      } catch (err) {
        if (Date.now() > deadline || err instanceof CommitUnknownError) throw err;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  };
  await once(() => store.putObject(objectDraft('photos', 'x/1'), 'any'));
  restored = loseNextCommit('blackhole', OUTAGE_MS);
  await t.rejects(store.renamePrefix('photos', 'x/', 'y/'), CommitUnknownError);
  await restored;
  t.ok(await once(() => store.getObject('photos', 'x/1')), 'the directory rename did not land');
});
