import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli } from '../fixtures/cli.js';
import { run, startMount, writeRandom } from '../fixtures/mount.js';

// A full disk on every backend is "no space" (ENOSPC on the mount), not a generic quorum
// failure (EIO): the user must learn to free space, not to look for a broken backend.
// The backends live on a 512 KiB tmpfs; the metadata does not.

const root = mkdtempSync(join(tmpdir(), 'lilio-nospace-'));
const disk = join(root, 'disk');
mkdirSync(disk);
let mounted = false;
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', disk], { stdio: 'ignore' });
  mounted = true;
} catch {
  // Not root, or no tmpfs: nothing to test on.
}
t.teardown(() => {
  if (mounted) execFileSync('umount', [disk]);
  rmSync(root, { recursive: true, force: true });
});

const config = {
  metadata: { type: 'local', path: 'meta' },
  storages: [1, 2, 3].map((i) => ({ name: `d${i}`, type: 'local', path: join(disk, `d${i}`) })),
  quorum: { n: 3, w: 2, r: 2 },
};

t.test('put onto full backends fails with "no space", in one line', { skip: !mounted && 'needs tmpfs' }, async (t) => {
  const home = join(root, 'home');
  mkdirSync(home);
  writeFileSync(join(home, 'config.json'), JSON.stringify(config));
  const env = { LILIO_HOME: home, LILIO_CONFIG: join(home, 'config.json'), LILIO_MASTER_KEY: '' };
  t.equal((await runCli(['bucket', 'create', 'full'], env)).code, 0);
  writeRandom(join(home, 'big.bin'), 2 * 1024 * 1024);
  const put = await runCli(['put', join(home, 'big.bin'), 'full/big.bin'], env);
  t.equal(put.code, 1);
  t.match(put.stderr, /^lilio: chunk [0-9a-f]+: no space left on its backends: quorum not reached \(0\/2\)/);
  t.equal(put.stderr.split('\n').length, 2, 'one line');
  t.notMatch(put.stderr, /^\s+at /m);
});

t.test('cp onto the mount gets ENOSPC, not EIO', { skip: !mounted && 'needs tmpfs' }, async (t) => {
  rmSync(join(disk, 'd1'), { recursive: true, force: true });
  rmSync(join(disk, 'd2'), { recursive: true, force: true });
  rmSync(join(disk, 'd3'), { recursive: true, force: true });
  const mount = await startMount(t, { config });
  const source = join(root, 'source.bin');
  writeRandom(source, 2 * 1024 * 1024);
  mkdirSync(join(mount.dir, 'photos'));
  const cp = await run('cp', [source, join(mount.dir, 'photos', 'big.bin')]);
  t.not(cp.code, 0, 'cp fails');
  t.match(cp.stderr, /No space left on device/, cp.stderr);
  t.notMatch(cp.stderr, /Input\/output error/);
});
