import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { versionString } from '../../src/cli/version.js';
import { builtChildEnv } from '../fixtures/child-env.js';
import { LILIO_BIN, runCli } from '../fixtures/cli.js';
import { startServer } from '../fixtures/server.js';

// The habits of a Unix CLI, through the real binary: ls -l -H, --json shapes, keys with control
// characters escaped, cat, cp, rm -r, completion and --version. Failures are one line, no stack.

const home = mkdtempSync(join(tmpdir(), 'lilio-habits-'));
const env = { LILIO_HOME: home, LILIO_CONFIG: '', LILIO_MASTER_KEY: '' };
t.teardown(() => rmSync(home, { recursive: true, force: true }));

const data = randomBytes(2 * 1024 * 1024 + 17);
const file = join(home, 'in.bin');
writeFileSync(file, data);
const weird = 'odd\u001b[31mred\nline';

/** A failure: status, and stderr is one "lilio: ..." line without stack frames. */
function failsInOneLine(t: Test, result: { code: number | null; stderr: string }, code: number, text: RegExp) {
  t.equal(result.code, code, result.stderr);
  t.match(result.stderr, /^lilio: [^\n]+\n$/, 'one line on stderr');
  t.notMatch(result.stderr, /\n\s+at /, 'no stack frames');
  t.match(result.stderr, text);
}

async function ok(args: string[]) {
  const result = await runCli(args, env);
  if (result.code !== 0) throw new Error(`lilio ${args.join(' ')}: ${result.stderr}`);
  return result;
}

t.before(async () => {
  await ok(['bucket', 'create', 'habits']);
  await ok(['bucket', 'create', 'other', '--encrypt']);
  await ok(['put', file, 'habits/dir/big.bin']);
  await ok(['put', file, `habits/${weird}`]);
  await ok(['put', '-', 'habits/dir/small.txt']);
});

t.test('ls -l -H prints sizes as ls -lh does; plain -l prints bytes', async (t) => {
  const human = (await ok(['ls', '-l', '-H', '-r', 'habits'])).stdout.toString();
  t.match(human, /^-rw-r--r--\s+2\.1M\s+\S+ \S+\s+dir\/big\.bin$/m);
  t.match(human, /^-rw-r--r--\s+0\s+\S+ \S+\s+dir\/small\.txt$/m);
  const bytes = (await ok(['ls', '-l', '-r', 'habits'])).stdout.toString();
  t.match(bytes, new RegExp(`\\s${data.length}\\s`));
});

t.test('keys with control characters are escaped in human output, exact in --json', async (t) => {
  for (const args of [
    ['ls', 'habits'],
    ['ls', '-l', 'habits'],
  ]) {
    const out = (await ok(args)).stdout.toString();
    t.notOk(out.includes('\u001b'), `${args.join(' ')}: no raw escape character`);
    t.ok(out.includes('odd\\x1b[31mred\\nline'), `${args.join(' ')}: shown escaped`);
    t.equal(out.trim().split('\n').length, 2, 'one line per entry (dir/ and the key)');
  }
  const stat = (await ok(['stat', `habits/${weird}`])).stdout.toString();
  t.notOk(stat.includes('\u001b'), 'stat shows no raw escape either');
  const listing = JSON.parse((await ok(['ls', 'habits', '--json'])).stdout.toString());
  t.same(Object.keys(listing).sort(), ['bucket', 'objects', 'prefix', 'prefixes']);
  t.same(listing.prefixes, ['dir/']);
  t.equal(listing.objects[0].key, weird, 'the key as it is');
  t.equal(listing.objects[0].size, data.length);
  const missing = await runCli(['cat', `habits/${weird}.gone`], env);
  t.equal(missing.code, 1);
  t.notOk(missing.stderr.includes('\u001b'), 'an error naming the key sends no raw escape either');
  t.match(missing.stderr, /^lilio: .*odd\\x1b\[31mred.*does not exist\n$/);
});

t.test('--json shapes of bucket ls, put, get, cp, rm', async (t) => {
  const buckets = JSON.parse((await ok(['bucket', 'ls', '--json'])).stdout.toString());
  t.same(
    buckets.map((b: { name: string; encrypted: boolean }) => [b.name, b.encrypted]),
    [
      ['habits', false],
      ['other', true],
    ],
  );
  t.same(Object.keys(buckets[0]).sort(), ['chunkSize', 'created', 'encrypted', 'name']);
  const put = await ok(['put', file, 'habits/json.bin', '--json']);
  t.same(JSON.parse(put.stdout.toString()), { bucket: 'habits', key: 'json.bin', size: data.length, chunks: 3 });
  t.equal(put.stderr, '', 'nothing else said');
  const target = join(home, 'got.bin');
  const get = await ok(['get', 'habits/json.bin', target, '--json']);
  t.same(JSON.parse(get.stdout.toString()), { bucket: 'habits', key: 'json.bin', size: data.length, path: target });
  t.ok(readFileSync(target).equals(data));
  failsInOneLine(t, await runCli(['get', 'habits/json.bin', '-', '--json'], env), 2, /--json/);
  const rm = await ok(['rm', 'habits/json.bin', '--json']);
  t.same(JSON.parse(rm.stdout.toString()), { bucket: 'habits', prefix: 'json.bin', removed: 1 });
});

t.test('cat streams objects to stdout; a reader that goes away ends it quietly', async (t) => {
  const cat = await ok(['cat', 'habits/dir/big.bin']);
  t.ok(cat.stdout.equals(data), 'the bytes');
  t.equal(cat.stderr, '');
  const two = await ok(['cat', 'habits/dir/small.txt', 'habits/dir/big.bin']);
  t.equal(two.stdout.length, data.length, 'several, one after the other');
  // | head -c 10: the pipe closes after ten bytes.
  const head = execFileSync(
    'bash',
    ['-c', `set -o pipefail; "${process.execPath}" "${LILIO_BIN}" cat habits/dir/big.bin | head -c 10 | wc -c`],
    { env: builtChildEnv(env), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.equal(head.trim(), '10', 'exit 0 and nothing on stderr (execFileSync throws otherwise)');
  failsInOneLine(t, await runCli(['cat', 'habits/nothing'], env), 1, /does not exist/);
  failsInOneLine(t, await runCli(['cat', 'habits'], env), 1, /names no object/);
});

t.test('cp copies between buckets with chunks of its own', async (t) => {
  const cp = await ok(['cp', 'habits/dir/big.bin', 'other/', '--json']);
  t.same(JSON.parse(cp.stdout.toString()), {
    source: { bucket: 'habits', key: 'dir/big.bin' },
    destination: { bucket: 'other', key: 'big.bin' },
    size: data.length,
    chunks: 3,
  });
  await ok(['cp', 'habits/dir/big.bin', 'habits/copy.bin']);
  const chunkIds = async (path: string) =>
    (JSON.parse((await ok(['stat', path, '--json'])).stdout.toString()).chunks as { id: string }[]).map((c) => c.id);
  const original = await chunkIds('habits/dir/big.bin');
  for (const copy of ['other/big.bin', 'habits/copy.bin']) {
    const ids = await chunkIds(copy);
    t.equal(ids.length, 3);
    t.notOk(
      ids.some((id) => original.includes(id)),
      `${copy}: no chunk shared with the original`,
    );
  }
  // Removing the original leaves the copies whole.
  await ok(['rm', 'habits/dir/big.bin']);
  t.ok((await ok(['cat', 'other/big.bin'])).stdout.equals(data), 'the encrypted copy reads back');
  t.ok((await ok(['cat', 'habits/copy.bin'])).stdout.equals(data));
  await ok(['cp', 'habits/copy.bin', 'habits/dir/big.bin']);
  failsInOneLine(t, await runCli(['cp', 'habits/copy.bin', 'habits/copy.bin'], env), 2, /same object/);
  failsInOneLine(t, await runCli(['cp', 'habits/none', 'other/x'], env), 1, /does not exist/);
});

t.test('rm -r removes a name and what is under it, with a count; a bucket root needs --all', async (t) => {
  await ok(['put', file, 'habits/tree/a']);
  await ok(['put', file, 'habits/tree/sub/b']);
  await ok(['put', file, 'habits/tree']);
  await ok(['put', file, 'habits/treehouse']);
  const rm = await ok(['rm', '-r', 'habits/tree']);
  t.equal(rm.stderr, 'removed 3 object(s) from habits/tree\n');
  const left = JSON.parse((await ok(['ls', '-r', 'habits', '--json'])).stdout.toString()).objects.map(
    (o: { key: string }) => o.key,
  );
  t.ok(left.includes('treehouse'), 'a key that only shares the letters stays');
  t.notOk(
    left.some((k: string) => k === 'tree' || k.startsWith('tree/')),
    'nothing of tree is left',
  );
  failsInOneLine(t, await runCli(['rm', '-r', 'habits/tree'], env), 1, /nothing to remove/);
  failsInOneLine(t, await runCli(['rm', '-r', 'other'], env), 2, /would remove every object of bucket other.*--all/);
  t.equal((await ok(['ls', 'other'])).stdout.toString().trim(), 'big.bin', 'refused: nothing removed');
  const all = await ok(['rm', '-r', 'other', '--all', '--json']);
  t.same(JSON.parse(all.stdout.toString()), { bucket: 'other', prefix: '', removed: 1 });
  t.equal((await ok(['ls', 'other'])).stdout.toString(), '', 'the bucket is empty and still there');
  failsInOneLine(t, await runCli(['rm', 'habits/x', '--all'], env), 2, /--all goes with -r/);
});

t.test('completion: bash sources the script and completes subcommands and options', async (t) => {
  const script = join(home, 'lilio.bash');
  writeFileSync(script, (await ok(['completion', 'bash'])).stdout);
  const complete = (line: string) => {
    const words = line.split(' ');
    const out = execFileSync(
      'bash',
      [
        '-c',
        `source "${script}"; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _lilio; printf '%s\\n' "\${COMPREPLY[@]}"`,
      ],
      { encoding: 'utf8', cwd: home },
    );
    return out.split('\n').filter((w) => w !== '');
  };
  t.same(complete('lilio bu'), ['bucket']);
  t.same(complete('lilio c').sort(), ['cat', 'completion', 'cp']);
  t.same(complete('lilio bucket ').sort(), ['create', 'info', 'ls', 'rm']);
  t.same(complete('lilio --config x.json bucket c'), ['create'], 'an option value is not taken for a command');
  t.ok(complete('lilio ls --').includes('--human'));
  t.ok(complete('lilio put -').includes('--no-progress'));
  t.ok(complete('lilio put in').includes('in.bin'), 'arguments complete as files');
  const zsh = (await ok(['completion', 'zsh'])).stdout.toString();
  t.match(zsh, /^#compdef lilio\n/);
  t.match(zsh, /bashcompinit/);
  failsInOneLine(t, await runCli(['completion', 'fish'], env), 2, /bash or zsh/);
});

t.test('--version: the package version and the commit', async (t) => {
  const version = await ok(['--version']);
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  const root = new URL('../..', import.meta.url).pathname;
  const head = execFileSync('git', ['-C', root, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
  t.equal(version.stdout.toString(), `${pkg.version} (commit ${head.slice(0, 12)})\n`);

  // Not a git checkout: the commit baked at build time, else "unknown".
  const copy = join(home, 'copy');
  mkdirSync(join(copy, 'dist'), { recursive: true });
  writeFileSync(join(copy, 'package.json'), JSON.stringify({ version: '9.8.7' }));
  t.equal(versionString(copy), '9.8.7 (commit unknown)');
  writeFileSync(join(copy, 'dist', 'build-info.json'), JSON.stringify({ commit: 'abcdef0123456789' }));
  t.equal(versionString(copy), '9.8.7 (commit abcdef012345)');
});

t.test('the progress bar stays off the stderr of a pipe', async (t) => {
  // stderr here is a pipe: not one byte of a bar, even for a transfer big enough to get one.
  const big = join(home, 'big.bin');
  writeFileSync(big, randomBytes(9 * 1024 * 1024));
  const put = await ok(['put', big, 'habits/big9.bin']);
  t.equal(put.stderr, 'stored habits/big9.bin: 9 MiB in 9 chunk(s)\n');
  const child = spawn(process.execPath, [LILIO_BIN, 'get', 'habits/big9.bin', join(home, 'big.out')], {
    env: builtChildEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const code = await new Promise((r) => child.on('close', r));
  t.equal(code, 0);
  t.equal(stderr, '', 'no bar, no escape codes');
});

t.test('cat, cp and rm -r through a server (--endpoint)', async (t) => {
  const server = await startServer(t);
  const make = await server.cli(['bucket', 'create', 'remote']);
  t.equal(make.code, 0, make.stderr);
  t.equal((await server.cli(['put', file, 'remote/a/one.bin'])).code, 0);
  const cp = await server.cli(['cp', 'remote/a/one.bin', 'remote/a/two.bin', '--json']);
  t.equal(cp.code, 0, cp.stderr);
  t.equal(JSON.parse(cp.stdout.toString()).chunks, 3);
  const cat = await server.cli(['cat', 'remote/a/two.bin']);
  t.ok(cat.stdout.equals(data), 'the copy reads back through the server');
  const stat = (key: string) =>
    server.localCli(['stat', `remote/${key}`, '--json']).then((r) => JSON.parse(r.stdout.toString()));
  const [one, two] = [await stat('a/one.bin'), await stat('a/two.bin')];
  t.notOk(
    two.chunks.some((c: { id: string }) => one.chunks.some((d: { id: string }) => d.id === c.id)),
    'no chunk shared',
  );
  const rm = await server.cli(['rm', '-r', 'remote/a']);
  t.equal(rm.code, 0, rm.stderr);
  t.equal(rm.stderr, 'removed 2 object(s) from remote/a\n');
  failsInOneLine(t, await server.cli(['bench', 'remote']), 2, /cannot use --endpoint/);
});
