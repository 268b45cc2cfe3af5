import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3, Range } from 'etcd3';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { EtcdMetadataStore } from '../../src/meta/etcd.js';
import { etcdOptionsFrom } from '../../src/meta/etcd-options.js';
import { bucketRecord, objectDraft } from '../contracts/meta-fixtures.js';
import { startEtcd } from '../fixtures/etcd.js';

// etcd with TLS (client certificates required) and password auth, as a production cluster runs:
// the store connects with the CA, its certificate and key from the config, and a user limited to its prefix.

const dir = mkdtempSync(join(tmpdir(), 'lilio-etcd-tls-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const pem = (name: string) => join(dir, name);
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=lilio test CA');
for (const who of ['server', 'client']) {
  openssl('req', ...ec, '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=lilio test ${who}`);
  writeFileSync(pem(`${who}.ext`), 'subjectAltName=IP:127.0.0.1\n');
  openssl(
    ...['x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial'],
    ...['-out', `${who}.pem`, '-days', '1', '-extfile', `${who}.ext`],
  );
}
const etcd = await startEtcd(t, { tls: { cert: pem('server.pem'), key: pem('server.key'), ca: pem('ca.pem') } });
const credentials = {
  rootCertificate: readFileSync(pem('ca.pem')),
  privateKey: readFileSync(pem('client.key')),
  certChain: readFileSync(pem('client.pem')),
};

// Auth on: root, and a user who may touch only /secure/.
const admin = new Etcd3({ hosts: etcd.endpoints, credentials });
await (await admin.role('root').create()).grant({ permission: 'Readwrite', range: Range.prefix('') });
await (await admin.user('root').create('root-password')).addRole('root');
await (await admin.role('lilio').create()).grant({ permission: 'Readwrite', range: Range.prefix('/secure/') });
await (await admin.user('lilio').create('lilio-password')).addRole('lilio');
await admin.auth.authEnable();
admin.close();

function storeFor(auth: { username: string; password: string }) {
  const config = parseConfig({
    storages: [{ name: 'one', type: 'local', path: '/unused' }],
    quorum: { n: 1, w: 1, r: 1 },
    metadata: {
      type: 'etcd',
      etcd: {
        endpoints: etcd.endpoints,
        prefix: '/secure',
        auth,
        tls: { caFile: pem('ca.pem'), certFile: pem('client.pem'), keyFile: pem('client.key') },
        requestTimeoutMs: 2_000,
      },
    },
  });
  if (config.metadata.type !== 'etcd') throw new Error('not etcd');
  const store = new EtcdMetadataStore(etcdOptionsFrom(config.metadata.etcd));
  t.teardown(() => store.close());
  return store;
}

t.test('TLS with a client certificate and a password: commits, reads, the watch', async (t) => {
  const store = storeFor({ username: 'lilio', password: 'lilio-password' });
  await store.createBucket(bucketRecord('photos'));
  const put = await store.putObject(objectDraft('photos', 'a/b'), 'absent');
  t.strictSame(await store.getObject('photos', 'a/b'), put);
  const other = storeFor({ username: 'lilio', password: 'lilio-password' });
  const before = other.generation();
  await store.putObject(objectDraft('photos', 'a/c'), 'absent');
  const deadline = Date.now() + 10_000;
  while (other.generation() === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.not(other.generation(), before, 'the watch works under auth and TLS');
});

t.test('a wrong password is PERMISSION, not a hang', async (t) => {
  const store = storeFor({ username: 'lilio', password: 'wrong' });
  await t.rejects(store.listBuckets(), { code: 'PERMISSION', message: /refused access/ });
});
