import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { etcdOptionsFrom } from '../../src/meta/etcd-options.js';

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'lilio-config-etcd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const storages = [1, 2, 3].map((i) => ({ name: `d${i}`, type: 'local', path: `/d/${i}` }));

t.test('an etcd metadata section: defaults, endpoint forms, validation with field paths', async (t) => {
  const config = parseConfig({
    storages,
    metadata: { type: 'etcd', etcd: { endpoints: ['10.0.0.1:2379', 'http://b:2379'] } },
  });
  t.same(config.metadata, {
    type: 'etcd',
    etcd: {
      endpoints: ['http://10.0.0.1:2379', 'http://b:2379'],
      prefix: '/lilio',
      dialTimeoutMs: 3_000,
      requestTimeoutMs: 5_000,
      maxTxnOps: 128,
    },
  });
  const bad = (etcd: object, message: RegExp) =>
    t.throws(() => parseConfig({ storages, metadata: { type: 'etcd', etcd } }), { code: 'CONFIG', message });
  bad({ endpoints: [] }, /metadata\.etcd\.endpoints: at least one etcd endpoint/);
  bad({ endpoints: ['not a url'] }, /metadata\.etcd\.endpoints\[0\]: must be host:port/);
  bad({ endpoints: ['a:1'], prefix: 'lilio' }, /metadata\.etcd\.prefix: must start with "\/"/);
  bad({ endpoints: ['a:1'], prefix: '/' }, /metadata\.etcd\.prefix: must not be "\/" alone/);
  bad({ endpoints: ['a:1'], colour: 'red' }, /metadata\.etcd: Unrecognized key: "colour"/);
  bad({ endpoints: ['a:1'], auth: { username: 'u' } }, /metadata\.etcd\.auth\.password/);
  bad({ endpoints: ['https://a:1'], tls: { certFile: '/c' } }, /metadata\.etcd\.tls: certFile and keyFile go together/);
  bad({ endpoints: ['a:1'], tls: { caFile: '/ca' } }, /metadata\.etcd\.endpoints: tls needs https:\/\/ endpoints/);
  bad({ endpoints: ['a:1'], maxTxnOps: 8 }, /metadata\.etcd\.maxTxnOps/);
  t.throws(() => parseConfig({ storages, metadata: { type: 'etcd' } }), { message: /metadata\.etcd/ });
});

t.test('TLS and auth: files relative to the config, read when the store is opened', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'ca.pem'), 'CA');
  writeFileSync(join(dir, 'client.pem'), 'CERT');
  writeFileSync(join(dir, 'client.key'), 'KEY');
  const file = join(dir, 'lilio.json');
  const tls = { caFile: 'ca.pem', certFile: 'client.pem', keyFile: 'client.key' };
  const auth = { username: 'lilio', password: 'secret' };
  writeFileSync(
    file,
    JSON.stringify({ storages, metadata: { type: 'etcd', etcd: { endpoints: ['https://e:2379'], tls, auth } } }),
  );
  const config = loadConfig({ configPath: file, env: { LILIO_HOME: dir } });
  if (config.metadata.type !== 'etcd') throw new Error('not etcd');
  t.same(config.metadata.etcd.tls, {
    caFile: join(dir, 'ca.pem'),
    certFile: join(dir, 'client.pem'),
    keyFile: join(dir, 'client.key'),
  });
  const options = etcdOptionsFrom(config.metadata.etcd);
  t.same(
    [options.tls?.ca?.toString(), options.tls?.cert?.toString(), options.tls?.key?.toString(), options.auth],
    ['CA', 'CERT', 'KEY', auth],
  );
  rmSync(join(dir, 'ca.pem'));
  t.throws(() => etcdOptionsFrom(config.metadata.type === 'etcd' ? config.metadata.etcd : (undefined as never)), {
    code: 'CONFIG',
    message: new RegExp(`metadata\\.etcd\\.tls\\.caFile: cannot read ${join(dir, 'ca.pem')}`),
  });
});

t.test('--metadata and the endpoints from --etcd-endpoints or LILIO_ETCD_ENDPOINTS', async (t) => {
  const home = tempDir(t);
  const env = { LILIO_HOME: home };
  const flagged = loadConfig({ env, metadata: 'etcd', etcdEndpoints: 'h1:2379, h2:2379' });
  t.same(flagged.metadata.type === 'etcd' && flagged.metadata.etcd.endpoints, ['http://h1:2379', 'http://h2:2379']);
  const fromEnv = loadConfig({ env: { ...env, LILIO_ETCD_ENDPOINTS: 'h3:2379' }, metadata: 'etcd' });
  t.same(fromEnv.metadata.type === 'etcd' && fromEnv.metadata.etcd.endpoints, ['http://h3:2379']);
  const flagWins = loadConfig({
    env: { ...env, LILIO_ETCD_ENDPOINTS: 'h3:2379' },
    metadata: 'etcd',
    etcdEndpoints: 'h4:1',
  });
  t.same(flagWins.metadata.type === 'etcd' && flagWins.metadata.etcd.endpoints, ['http://h4:1']);
  t.same(
    loadConfig({ env: { ...env, LILIO_ETCD_ENDPOINTS: 'h3:2379' } }).metadata.type,
    'local',
    'the variable alone changes nothing',
  );
  t.same(loadConfig({ env, metadata: 'memory' }).metadata, { type: 'memory' });
  t.throws(() => loadConfig({ env, metadata: 'etcd' }), { code: 'CONFIG', message: /needs endpoints/ });
  t.throws(() => loadConfig({ env, etcdEndpoints: 'h1:2379' }), {
    code: 'CONFIG',
    message: /--etcd-endpoints needs an etcd/,
  });
  t.throws(() => loadConfig({ env, metadata: 'etcd', etcdEndpoints: 'nonsense' }), {
    code: 'CONFIG',
    message: /--metadata etcd: metadata\.etcd\.endpoints\.0: must be host:port/,
  });
  t.throws(() => loadConfig({ env, metadata: 'mysql' }), { code: 'CONFIG', message: /--metadata mysql/ });

  // A config that already is etcd keeps its settings; the endpoints are replaced.
  const file = join(home, 'c.json');
  writeFileSync(
    file,
    JSON.stringify({ storages, metadata: { type: 'etcd', etcd: { endpoints: ['a:1'], prefix: '/mine' } } }),
  );
  const replaced = loadConfig({ configPath: file, env, etcdEndpoints: 'b:2' });
  t.same(replaced.metadata.type === 'etcd' && [replaced.metadata.etcd.prefix, replaced.metadata.etcd.endpoints], [
    '/mine',
    ['http://b:2'],
  ]);
});
