import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { translateMountCall } from '../../src/cli/mount-helper.js';
import { builtChildEnv } from '../fixtures/child-env.js';
import { runCli } from '../fixtures/cli.js';

// Mounting as people do: an /etc/fstab line `lilio#CONFIG MOUNTPOINT fuse.lilio OPTIONS` and
// `mount MOUNTPOINT`, which runs /sbin/mount.fuse.lilio (bin/mount.lilio). It runs in a mount
// namespace of its own (unshare -m) where a temporary fstab is bound over /etc/fstab and the
// helper is put into /usr/sbin (a tmpfs of links to the real one), so the host sees nothing.
// The systemd units in deploy/systemd pass `systemd-analyze verify`.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HELPER = join(ROOT, 'bin', 'mount.lilio');

function can(command: string, args: string[]): boolean {
  return spawnSync(command, args, { stdio: 'ignore' }).status === 0;
}
const root = process.getuid?.() === 0;
const unshareWorks = root && can('unshare', ['-m', 'true']);

t.test('mount options become lilio mount flags', async (t) => {
  t.same(
    translateMountCall([
      'lilio#/etc/lilio/config.json',
      '/mnt/lilio',
      '-o',
      'rw,allow_other,_netdev,x-systemd.automount,cache_size=64MiB,home=/var/lib/lilio,fuse=native,metadata=etcd',
    ]),
    {
      argv: [
        '--config',
        '/etc/lilio/config.json',
        '--metadata',
        'etcd',
        'mount',
        '/mnt/lilio',
        '--allow-other',
        '--cache-size',
        '64MiB',
        '--fuse',
        'native',
      ],
      home: '/var/lib/lilio',
      fake: false,
    },
  );
  t.same(translateMountCall(['lilio', '/m', '-n', '-o', 'ro,noxattrs']).argv, [
    'mount',
    '/m',
    '--read-only',
    '--no-xattrs',
  ]);
  t.equal(translateMountCall(['/etc/l.json', '/m', '-f']).fake, true, 'mount -f: a fake run');
  t.throws(() => translateMountCall(['lilio', '/m', '-o', 'bogus']), /unknown mount option "bogus"/);
  t.throws(() => translateMountCall(['lilio', '/m', '-o', 'cache_size']), /needs a value/);
  t.throws(() => translateMountCall(['lilio', '/m', '-o', 'foreground']), /unknown mount option/);
  t.throws(() => translateMountCall(['/m']), /usage: mount\.lilio/);

  // Through the helper itself: mount(8)'s exit statuses, one line.
  const bad = spawnSync(HELPER, ['lilio', '/nonexistent/x', '-o', 'bogus'], { env: builtChildEnv(), encoding: 'utf8' });
  t.equal(bad.status, 1, 'a wrong call is 1, as mount(8) says');
  t.equal(bad.stderr, 'mount.lilio: unknown mount option "bogus"\n');
  const failed = spawnSync(HELPER, ['lilio', '/nonexistent/parent/x'], {
    env: builtChildEnv({ LILIO_HOME: mkdtempSync(join(tmpdir(), 'lilio-helper-')) }),
    encoding: 'utf8',
  });
  t.equal(failed.status, 32, 'a failed mount is 32');
  t.match(failed.stderr, /^lilio: cannot mount on \/nonexistent\/parent\/x: its parent directory .* does not exist\n$/);
});

t.test(
  'an /etc/fstab line mounts Lilio through mount.fuse.lilio',
  { skip: !unshareWorks && 'needs root and unshare -m' },
  async (t) => {
    const home = mkdtempSync(join(tmpdir(), 'lilio-fstab-'));
    const dir = join(home, 'mnt');
    const data = join(home, 'lilio-home');
    const pidFile = join(home, 'mount.pid');
    t.teardown(() => {
      // The namespace lives as long as a process in it: kill the mount process we started (by pid),
      // and the namespace and its mount go with it, whatever the script did.
      try {
        const pid = Number(readFileSync(pidFile, 'utf8'));
        if (pid > 0) process.kill(pid, 'SIGKILL');
      } catch {
        // Never mounted, or already gone.
      }
      rmSync(home, { recursive: true, force: true });
    });
    mkdirSync(data);
    mkdirSync(dir);
    const config = join(home, 'config.json');
    writeFileSync(
      config,
      JSON.stringify({
        metadata: { type: 'local', path: join(data, 'meta') },
        storages: [1, 2, 3].map((i) => ({ name: `disk-${i}`, type: 'local', path: join(data, `d${i}`) })),
        quorum: { n: 3, w: 2, r: 2 },
      }),
    );
    const env = { LILIO_HOME: data, LILIO_CONFIG: config, LILIO_MASTER_KEY: '' };
    const created = await runCli(['bucket', 'create', 'fstab'], env);
    t.equal(created.code, 0, created.stderr);
    const fstab = join(home, 'fstab');
    // As an operator writes it: no environment reaches a boot-time mount, so home= says where LILIO_HOME is.
    writeFileSync(fstab, `lilio#${config}  ${dir}  fuse.lilio  defaults,_netdev,home=${data}  0 0\n`);
    const script = `
set -u
orig=${home}/sbin-orig
mkdir -p "$orig"
mount --bind /usr/sbin "$orig"
mount -t tmpfs tmpfs /usr/sbin
for f in "$orig"/*; do ln -s "$f" /usr/sbin/; done
ln -s ${HELPER} /usr/sbin/mount.fuse.lilio
mount --bind ${fstab} /etc/fstab
out=$(mount ${dir} 2>&1); status=$?
echo "MOUNT status=$status: $out"
echo "$out" | sed -n 's/.*(pid \\([0-9]*\\);.*/\\1/p' > ${pidFile}
[ "$status" -eq 0 ] || exit 1
trap '"${process.execPath}" "${join(ROOT, 'bin', 'lilio')}" umount ${dir} >/dev/null 2>&1' EXIT
grep " ${dir} " /proc/mounts | sed 's/^/TABLE /'
echo hello-from-fstab > ${dir}/fstab/greeting.txt && echo "WRITE ok"
ls ${dir}/fstab | sed 's/^/LS /'
"${process.execPath}" "${join(ROOT, 'bin', 'lilio')}" umount ${dir}; echo "UMOUNT status=$?"
trap - EXIT
grep -c " ${dir} " /proc/mounts | sed 's/^/AFTER /'
`;
    const run = spawnSync('unshare', ['-m', '--propagation', 'private', 'bash', '-c', script], {
      // mount(8) would not hand tap's loaders to node anyway; PATH and HOME it removes itself.
      env: builtChildEnv({ LILIO_HOME: '', LILIO_CONFIG: '', LILIO_MASTER_KEY: '' }),
      encoding: 'utf8',
      timeout: 120_000,
    });
    const out = run.stdout;
    t.equal(run.status, 0, `${out}\n${run.stderr}`);
    t.match(
      out,
      /^MOUNT status=0: mounted .*mnt \(pid \d+; log /m,
      'mount(8) ran the helper; it returned once mounted',
    );
    t.match(out, new RegExp(`^TABLE \\S+ ${dir} fuse`, 'm'), 'in the mount table');
    t.match(out, /^WRITE ok$/m);
    t.match(out, /^LS greeting\.txt$/m);
    t.match(out, /^UMOUNT status=0$/m, 'lilio umount unmounts it');
    t.match(out, /^AFTER 0$/m, 'gone from the mount table');
    // The file went through the mount into the store that the fstab line names.
    const cat = await runCli(['cat', 'fstab/greeting.txt'], env);
    t.equal(cat.stdout.toString(), 'hello-from-fstab\n', cat.stderr);
  },
);

t.test(
  'the systemd units pass systemd-analyze verify',
  { skip: !can('systemd-analyze', ['--version']) && 'no systemd-analyze' },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'lilio-units-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    for (const unit of ['lilio-mount.service', 'mnt-lilio.mount']) {
      // The units name /opt/lilio, where README.md installs Lilio; verify checks that ExecStart exists.
      const text = readFileSync(join(ROOT, 'deploy', 'systemd', unit), 'utf8').replaceAll(
        '/opt/lilio',
        ROOT.replace(/\/$/, ''),
      );
      writeFileSync(join(dir, unit), text);
    }
    const verify = (unit: string) =>
      spawnSync('systemd-analyze', ['verify', '--man=no', join(dir, unit)], { encoding: 'utf8', cwd: dir });
    for (const unit of ['lilio-mount.service', 'mnt-lilio.mount']) {
      const result = verify(unit);
      t.equal(result.status, 0, `${unit}: ${result.stderr}`);
      t.equal(result.stderr.trim(), '', `${unit}: no warning`);
    }
    // It can fail: a unit whose command does not exist is refused.
    writeFileSync(
      join(dir, 'broken.service'),
      readFileSync(join(dir, 'lilio-mount.service'), 'utf8').replace(/ExecStart=\S+/, 'ExecStart=/nonexistent/lilio'),
    );
    t.not(verify('broken.service').status, 0);
    execFileSync('true');
  },
);
