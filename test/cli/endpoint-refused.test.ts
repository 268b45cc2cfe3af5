import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli } from '../fixtures/cli.js';

// Commands that open the stores themselves have no remote form. With --endpoint they used to
// open a new, empty local store in $LILIO_HOME and report on it ("clean", having checked
// nothing); now they refuse, as bad usage, before touching anything.

t.test('scrub, gc, rebalance, meta and mount refuse --endpoint with exit 2', async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'lilio-endpoint-'));
  t.teardown(() => rmSync(home, { recursive: true, force: true }));
  const env = { LILIO_HOME: home, LILIO_CONFIG: '', LILIO_MASTER_KEY: '', LILIO_TOKEN: 'x'.repeat(32) };
  const mountpoint = join(home, 'mnt');
  const cases: Array<[string, string[]]> = [
    ['scrub', ['scrub']],
    ['gc', ['gc', '--dry-run']],
    ['rebalance', ['rebalance', '--dry-run']],
    ['meta dump', ['meta', 'dump']],
    ['meta load', ['meta', 'load', '-']],
    ['mount', ['mount', mountpoint]],
    ['mount', ['mount', '--foreground', mountpoint]],
  ];
  for (const [name, args] of cases) {
    // Before and after the command name: both are global options.
    for (const argv of [
      [...args, '--endpoint', 'http://127.0.0.1:1'],
      ['--endpoint', 'http://127.0.0.1:1', ...args],
    ]) {
      const result = await runCli(argv, env);
      t.equal(result.code, 2, `${argv.join(' ')}: bad usage`);
      t.equal(
        result.stderr,
        `lilio: lilio ${name} works on the stores directly and cannot use --endpoint: ` +
          "run it where the server runs, with the server's --config\n",
        `${argv.join(' ')}: one clear line`,
      );
    }
  }
  t.same(readdirSync(home), [], 'no local store was created and no mountpoint made');
  t.notOk(existsSync(mountpoint));
});
