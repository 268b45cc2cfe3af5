import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { runCli } from '../fixtures/cli.js';
import { isMounted } from '../fixtures/mount.js';

// `lilio umount` never hangs: a mount whose process died is detached lazily at once, and one
// whose process does not answer SIGTERM (stopped here) is detached lazily after --timeout.

const home = mkdtempSync(join(tmpdir(), 'lilio-umount-'));
const env = { LILIO_HOME: home, LILIO_CONFIG: '', LILIO_MASTER_KEY: '' };
t.teardown(() => rmSync(home, { recursive: true, force: true }));

/** Mounts in the background through the CLI; teardown leaves no mount and no process behind. */
async function mountInBackground(t: Test, name: string): Promise<{ dir: string; pid: number }> {
  const dir = join(home, name);
  mkdirSync(dir);
  const mounted = await runCli(['mount', dir], env);
  t.equal(mounted.code, 0, mounted.stderr);
  const pid = Number(/\(pid (\d+);/.exec(mounted.stdout.toString())?.[1]);
  t.ok(pid > 0, 'the mount process id is printed');
  t.teardown(() => {
    for (const signal of ['SIGCONT', 'SIGKILL'] as const) {
      try {
        process.kill(pid, signal);
      } catch {
        // Already gone.
      }
    }
    if (isMounted(dir)) execFileSync('fusermount', ['-uz', dir]);
  });
  return { dir, pid };
}

t.test('a dead mount (its process killed) is unmounted at once', async (t) => {
  const { dir, pid } = await mountInBackground(t, 'dead');
  process.kill(pid, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 300));
  t.ok(isMounted(dir), 'still in the mount table, answering ENOTCONN');
  const started = Date.now();
  const result = await runCli(['umount', dir], env);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout.toString(), /unmounted .*dead \(its mount process was gone\)/);
  t.notOk(isMounted(dir), 'gone from the mount table');
  t.ok(Date.now() - started < 15_000, 'quickly');
});

t.test('a mount process that does not answer is detached lazily after --timeout', async (t) => {
  const { dir, pid } = await mountInBackground(t, 'stuck');
  process.kill(pid, 'SIGSTOP');
  const started = Date.now();
  const result = await runCli(['umount', dir, '--timeout', '1'], env);
  t.equal(result.code, 1, 'the unmount did not go as asked: status 1');
  t.match(
    result.stderr,
    new RegExp(`^lilio: the mount process ${pid} did not unmount .*stuck within 1 s: detached it lazily`),
  );
  t.equal(result.stderr.split('\n').length, 2, 'one line');
  t.notOk(isMounted(dir), 'gone from the mount table');
  t.ok(Date.now() - started < 15_000, `bounded (${Date.now() - started} ms)`);

  const bad = await runCli(['umount', dir, '--timeout', 'soon'], env);
  t.equal(bad.code, 2, 'a bad --timeout is bad usage');
});
