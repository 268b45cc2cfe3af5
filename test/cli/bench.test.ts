import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { bytesNeeded, renderBench, settingsFrom } from '../../src/cli/bench.js';
import { runCli } from '../fixtures/cli.js';
import { startMount } from '../fixtures/mount.js';

// `lilio bench` with tiny sizes: on a bucket through the engine, and on a mounted directory with
// the mount's metrics; a table with the engine's view; a free-space guard; one-line failures.

const home = mkdtempSync(join(tmpdir(), 'lilio-bench-'));
const env = { LILIO_HOME: home, LILIO_CONFIG: '', LILIO_MASTER_KEY: '' };
t.teardown(() => rmSync(home, { recursive: true, force: true }));

const tiny = ['--big-file-size', '3MiB', '--small-files', '20', '--small-file-size', '4KiB', '--threads', '2'];
const phases = ['Write big file', 'Read big file', 'Write small file', 'Read small file', 'Stat file', 'Delete file'];

function failsInOneLine(t: Test, result: { code: number | null; stderr: string }, code: number, text: RegExp) {
  t.equal(result.code, code, result.stderr);
  t.match(result.stderr, /^lilio: [^\n]+\n$/, 'one line on stderr');
  t.notMatch(result.stderr, /\n\s+at /, 'no stack frames');
  t.match(result.stderr, text);
}

t.test('settings and the space a run needs', async (t) => {
  const s = settingsFrom({
    bigFileSize: '1G',
    smallFileSize: '128K',
    smallFiles: '2000',
    threads: '4',
    blockSize: '1MiB',
  });
  t.same(s, { bigFileSize: 1024 ** 3, smallFileSize: 128 * 1024, smallFiles: 2000, threads: 4, blockSize: 1024 ** 2 });
  t.equal(bytesNeeded(s), 4 * 1024 ** 3, 'the big files (4 x 1 GiB) outweigh the small ones (4 x 2000 x 128 KiB)');
  t.equal(bytesNeeded({ ...s, bigFileSize: 0 }), 4 * 2000 * 128 * 1024, 'then the small ones');
  t.throws(
    () => settingsFrom({ bigFileSize: 'huge', smallFileSize: '1K', smallFiles: '1', threads: '1', blockSize: '1M' }),
    /--big-file-size: "huge" is not a size/,
  );
  t.throws(
    () => settingsFrom({ bigFileSize: '1M', smallFileSize: '1K', smallFiles: '1', threads: '0', blockSize: '1M' }),
    /--threads/,
  );
  const text = renderBench('header', []);
  t.equal(text.split('\n')[0], 'header');
});

t.test('a bucket through the engine: every phase, with chunks, replicas and quorum', async (t) => {
  t.equal((await runCli(['bucket', 'create', 'bench'], env)).code, 0);
  const result = await runCli(['bench', 'bench', ...tiny, '--json'], env);
  t.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout.toString());
  t.equal(report.kind, 'bucket, through the engine');
  t.same(
    report.results.map((r: { name: string }) => r.name),
    phases,
  );
  const [writeBig, readBig, writeSmall, , stat] = report.results;
  t.equal(writeBig.unit, 'MiB/s');
  t.ok(writeBig.value > 0 && writeBig.cost > 0);
  // 2 threads x 3 MiB in 1 MiB chunks: 6 chunk writes, each reaching its quorum (W=2 of N=3).
  t.equal(writeBig.engine.chunksWritten, 6);
  t.equal(writeBig.engine.quorumFailures, 0);
  // The replicas written after the quorum answered are waited for (untimed) and counted in their own row.
  t.equal(writeBig.engine.replicasWritten, 18, 'N=3 replicas per chunk');
  t.equal(readBig.engine.replicasWritten, 0, 'nothing spills into the next row');
  t.ok(writeBig.engine.backendBytesWritten >= 12 * 1024 * 1024);
  t.ok(writeBig.engine.replicaPutSeconds > 0);
  t.equal(readBig.engine.chunksWritten, 0);
  t.ok(readBig.engine.replicasRead >= 6, 'a read fetches each chunk');
  // 40 small files of 4 KiB: kept inline in the metadata or one chunk each, never more.
  t.ok(writeSmall.engine.chunksWritten <= 40);
  t.equal(writeSmall.unit, 'files/s');
  t.equal(stat.engine.replicasRead, 0, 'stat reads no chunk');
  const left = await runCli(['ls', '-r', 'bench'], env);
  t.equal(left.stdout.toString(), '', 'the bench leaves nothing behind');

  const table = await runCli(['bench', 'bench', ...tiny], env);
  t.equal(table.code, 0, table.stderr);
  const text = table.stdout.toString();
  t.match(text, /^bench on bench \(bucket, through the engine\): 2 thread\(s\); big file 3 MiB per thread; 20 small/);
  t.match(text, /\nITEM +VALUE +COST +CHUNKS WRITTEN +REPLICAS W\/R +QUORUM FAILED +BACKEND W\/R +REPLICA PUT\n/);
  t.match(text, /\nWrite big file +[\d.]+ MiB\/s +[\d.]+ s\/file +6 +\d+\/\d+ +0 /);
  for (const phase of phases) t.match(text, new RegExp(`\\n${phase} `));
});

t.test('the free-space guard refuses a run that would fill the backends', async (t) => {
  const result = await runCli(['bench', 'bench', '--big-file-size', '900TiB'], env);
  failsInOneLine(t, result, 1, /bench would write 900 TiB at once and bucket bench's backends has .* free/);
  const tooMany = await runCli(['bench', 'bench', '--small-files', '1000000000', '--small-file-size', '1MiB'], env);
  t.equal(tooMany.code, 1);
});

t.test('bad usage', async (t) => {
  failsInOneLine(t, await runCli(['bench', 'bench', '--threads', 'many'], env), 2, /--threads/);
  failsInOneLine(t, await runCli(['bench', 'no/such/dir'], env), 2, /no such directory/);
  failsInOneLine(t, await runCli(['bench', 'nobucket'], env), 1, /bucket "nobucket" does not exist|does not exist/);
  failsInOneLine(
    t,
    await runCli(['bench', 'bench', '--metrics-url', 'http://127.0.0.1:1/metrics'], env),
    2,
    /--metrics-url goes with a mounted directory/,
  );
});

t.test('a mounted directory, with the engine view from the mount metrics', async (t) => {
  const m = await startMount(t, { metrics: true });
  const made = await m.cli(['bucket', 'create', 'mnt-bench']);
  t.equal(made.code, 0, made.stderr);
  const dir = join(m.dir, 'mnt-bench');
  const result = await m.cli([
    'bench',
    dir,
    ...tiny,
    '--metrics-url',
    `http://127.0.0.1:${m.metricsPort}/metrics`,
    '--json',
  ]);
  t.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout.toString());
  t.equal(report.kind, 'directory');
  t.same(
    report.results.map((r: { name: string }) => r.name),
    phases,
  );
  t.equal(report.results[0].engine.chunksWritten, 6, "the mount's engine wrote 6 chunks for the big files");
  t.equal(report.results[0].engine.quorumFailures, 0);
  t.same(readdirSync(dir), [], 'the bench directory is removed');

  // Without --metrics-url: the timings, and a word on how to get the engine's columns.
  const plain = await m.cli([
    'bench',
    dir,
    '--big-file-size',
    '1MiB',
    '--small-files',
    '5',
    '--small-file-size',
    '1KiB',
  ]);
  t.equal(plain.code, 0, plain.stderr);
  t.match(plain.stdout.toString(), /\nWrite big file +[\d.]+ MiB\/s +[\d.]+ s\/file +- +- +- +- +-\n/);
  t.match(plain.stdout.toString(), /--metrics-port/);
  failsInOneLine(
    t,
    await m.cli(['bench', dir, '--big-file-size', '900TiB']),
    1,
    new RegExp(`bench would write 900 TiB at once and ${dir} has`),
  );
});
