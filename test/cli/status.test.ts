import { mkdtempSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli } from '../fixtures/cli.js';
import { pattern } from '../fixtures/engine.js';

// `lilio status`: backends, buckets and the repair and gc backlogs, as a table and as JSON,
// measured against what is really on the backends (a replica deleted behind Lilio's back shows).

const home = mkdtempSync(join(tmpdir(), 'lilio-status-'));
t.teardown(() => rmSync(home, { recursive: true, force: true }));
const env = { LILIO_HOME: home, LILIO_CONFIG: '', LILIO_MASTER_KEY: '' };
const lilio = (args: string[], input?: Buffer) => runCli(args, env, input);

function chunkFiles(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...chunkFiles(path));
    else if (/^[0-9a-f]{32}$/.test(entry.name)) found.push(path);
  }
  return found;
}

/** The same stores as the embedded default, with settings changed. */
function configWith(extra: object, storages?: object[]): string {
  const path = join(home, `config-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(
    path,
    JSON.stringify({
      metadata: { type: 'local', path: join(home, 'meta') },
      storages:
        storages ?? [1, 2, 3].map((i) => ({ name: `local-${i}`, type: 'local', path: join(home, 'data', String(i)) })),
      quorum: { n: 3, w: 2, r: 2 },
      encryption: { masterKeyFile: join(home, 'master.key') },
      ...extra,
    }),
  );
  return path;
}

t.before(async () => {
  for (const args of [
    ['bucket', 'create', 'photos'],
    ['bucket', 'create', 'secret', '--encrypt', '--chunk-size', '64KiB'],
  ]) {
    const r = await lilio(args);
    if (r.code !== 0) throw new Error(r.stderr);
  }
  for (const [path, data] of [
    ['photos/big.bin', pattern(3 * 1024 * 1024 + 1, 1)],
    ['photos/tiny.txt', Buffer.from('inline')],
    ['secret/s.bin', pattern(200_000, 2)],
    ['secret/doomed.bin', pattern(70_000, 3)],
  ] as Array<[string, Buffer]>) {
    const r = await lilio(['put', '-', path], data);
    if (r.code !== 0) throw new Error(r.stderr);
  }
});

t.test('status --json: every number checked against what was stored', async (t) => {
  // One replica deleted behind Lilio's back, one object removed (its chunks wait for gc).
  t.equal((await lilio(['rm', 'secret/doomed.bin'])).code, 0);
  const big = JSON.parse((await lilio(['stat', 'photos/big.bin', '--json'])).stdout.toString());
  const chunk = big.chunks.find((c: { replicas: string[] }) => c.replicas.includes('local-1'));
  const victim = chunkFiles(join(home, 'data', '1')).find((f) => f.endsWith(chunk.id))!;
  const victimSize = statSync(victim).size;
  unlinkSync(victim);

  const result = await lilio(['status', '--json']);
  t.equal(result.code, 0, result.stderr);
  const status = JSON.parse(result.stdout.toString());
  t.match(status.quorum, { n: 3, w: 2, r: 2, readMode: 'first' });
  t.equal(status.metadata, 'local');
  t.equal(status.backends.length, 3);
  // 4 chunks of photos/big.bin, 4 of secret/s.bin (3 x 64 KiB + 4,392 B): 8 chunks x 3 replicas.
  let expected = 0;
  let missing = 0;
  let held = 0;
  let share = 0;
  for (const b of status.backends) {
    t.equal(b.healthy, true, `${b.name} up`);
    t.equal(b.type, 'local');
    t.ok(b.latencyMs >= 0);
    t.ok(b.freeBytes > 0 && b.totalBytes >= b.freeBytes, `${b.name} capacity`);
    t.match(b.location, new RegExp(`data/${b.name.slice(-1)}$`));
    expected += b.expectedChunks;
    missing += b.missingChunks;
    held += b.chunks;
    share += b.ringShare;
    t.equal(b.chunks, b.expectedChunks - b.missingChunks + b.unreferencedChunks, `${b.name}: chunk counts add up`);
    t.ok(b.storedBytes > 0, `${b.name} stored bytes`);
  }
  t.equal(expected, 8 * 3, 'every replica the metadata expects');
  t.equal(missing, 1, 'the deleted replica is missing');
  t.equal(status.backends[0].missingChunks, 1, 'on local-1');
  t.equal(held, 8 * 3 - 1 + 2 * 3, "held: the live replicas plus the removed object's 2 chunks x 3");
  t.ok(Math.abs(share - 1) < 1e-9, 'ring shares add up to 1');
  const storedTotal = status.backends.reduce((n: number, b: { storedBytes: number }) => n + b.storedBytes, 0);
  const plain = 3 * 1024 * 1024 + 1;
  // Encrypted chunks carry a 12-byte nonce and a 16-byte tag each.
  const encrypted = 200_000 + 4 * 28;
  t.equal(storedTotal, (plain + encrypted) * 3 - victimSize, 'stored bytes: every held replica of a live chunk');

  t.same(status.buckets, [
    {
      name: 'photos',
      encrypted: false,
      chunkSize: 1024 * 1024,
      created: status.buckets[0].created,
      objects: 2,
      bytes: plain + 6,
      chunks: 4,
      inlineObjects: 1,
    },
    {
      name: 'secret',
      encrypted: true,
      chunkSize: 65536,
      created: status.buckets[1].created,
      objects: 1,
      bytes: 200_000,
      chunks: 4,
      inlineObjects: 0,
    },
  ]);
  t.same(status.repair, { underReplicatedChunks: 1, missingReplicas: 1, lostChunks: 0, recorded: 0 });
  t.same(status.gc, { queued: 2, due: 0, graceSeconds: 600 });
  t.same(status.uploads, { open: 0, expireAfterSeconds: 7 * 24 * 3600 }, 'no multipart upload in progress');

  const zeroGrace = await runCli(['status', '--json', '--config', configWith({ gc: { graceSeconds: 0 } })], env);
  t.equal(zeroGrace.code, 0, zeroGrace.stderr);
  t.same(JSON.parse(zeroGrace.stdout.toString()).gc, { queued: 2, due: 2, graceSeconds: 0 }, 'past a zero grace');
});

t.test('status in a terminal: aligned tables and the backlogs in words', async (t) => {
  const result = await lilio(['status']);
  t.equal(result.code, 0, result.stderr);
  const lines = result.stdout.toString().split('\n');
  t.match(lines[0], /^config: embedded default {3}metadata: local {3}quorum: N=3 W=2 R=2 \(first reads\)$/);
  const header = lines.findIndex((l) => l.startsWith('BACKEND'));
  t.ok(header > 0, 'a backend table');
  const columns = ['TYPE', 'HEALTH', 'LATENCY', 'CHUNKS', 'STORED', 'MISSING', 'UNREFERENCED', 'FREE', 'RING SHARE'];
  const at = columns.map((c) => lines[header]!.indexOf(c));
  t.ok(
    at.every((i, k) => i > 0 && (k === 0 || i > at[k - 1]!)),
    'columns in order',
  );
  for (const row of lines.slice(header + 1, header + 4)) {
    t.match(row, /^local-\d {2}local {2}up /);
    // Every cell starts exactly under its heading.
    for (const [k, column] of columns.entries()) t.not(row[at[k]!], ' ', `${column} cell under its heading: ${row}`);
    t.match(row, /\d+\.\d\d ms/);
    t.match(row, /\d+(\.\d)? %|\d+\.\d%/);
  }
  t.match(lines[header + 1], / 1 {2,}/, 'local-1 shows its missing replica');
  const text = result.stdout.toString();
  t.match(text, /\nBUCKET {2}ENCRYPTED {2}OBJECTS {2}BYTES {4}CHUNKS {2}CHUNK SIZE\n/);
  const cells = (name: string) => lines.find((l) => l.startsWith(`${name} `))?.split(/ {2,}/);
  t.same(cells('photos'), ['photos', 'no', '2', '3 MiB', '4', '1 MiB']);
  t.same(cells('secret'), ['secret', 'yes', '1', '195 KiB', '4', '64 KiB']);
  t.match(
    text,
    /\nrepair backlog: {2}1 under-replicated chunk\(s\), 1 missing replica\(s\), 0 lost; 0 chunk\(s\) recorded for repair\n/,
  );
  t.match(text, /\ngc backlog: {6}2 chunk\(s\) queued, 0 past the 600 s grace period \(lilio gc deletes those\)\n/);
  t.match(text, /\nno live sessions\n?$/, 'the CLI commands that wrote closed their sessions as they exited');
});

t.test('a backend that is down is shown as DOWN, and its replicas as missing', async (t) => {
  const blocker = join(home, 'not-a-dir');
  writeFileSync(blocker, 'x');
  const config = configWith({}, [
    { name: 'local-1', type: 'local', path: join(home, 'data', '1') },
    { name: 'local-2', type: 'local', path: join(home, 'data', '2') },
    { name: 'local-3', type: 'local', path: blocker },
  ]);
  const json = await runCli(['status', '--json', '--config', config], env);
  t.equal(json.code, 0, json.stderr);
  const status = JSON.parse(json.stdout.toString());
  const down = status.backends[2];
  t.match(down, { name: 'local-3', healthy: false, expectedChunks: 8 });
  t.match(down.error, /not a directory/);
  t.equal(down.chunks, undefined, 'nothing counted on a backend that is down');
  t.same(status.repair, { underReplicatedChunks: 8, missingReplicas: 9, lostChunks: 0, recorded: 0 });
  const text = await runCli(['status', '--config', config], env);
  t.match(
    text.stdout.toString(),
    /\nlocal-3 {2}local {2}DOWN +- .* \d+\.\d% +\(local backend "local-3": .*not a directory\)\n/,
  );
});
