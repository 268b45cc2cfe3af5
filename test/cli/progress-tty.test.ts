import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { builtChildEnv } from '../fixtures/child-env.js';
import { LILIO_BIN } from '../fixtures/cli.js';

// The progress bar as a person sees it: put and get run in a terminal (tmux), and the screen
// (capture-pane) shows the total, the rate, the elapsed time and the ETA.

let hasTmux = true;
try {
  execFileSync('tmux', ['-V']);
} catch {
  hasTmux = false;
}

const home = mkdtempSync(join(tmpdir(), 'lilio-progress-'));
const socket = `lilio-progress-${process.pid}`;
const tmux = (...args: string[]) => execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
t.teardown(() => {
  try {
    execFileSync('tmux', ['-L', socket, 'kill-server'], { stdio: 'ignore' });
  } catch {
    // No server left.
  }
  rmSync(home, { recursive: true, force: true });
});

/** Runs lilio ARGS in a fresh tmux window and returns the screen once it has exited. */
async function onScreen(name: string, args: string[]): Promise<string> {
  const env = builtChildEnv({ LILIO_HOME: home, LILIO_CONFIG: '', LILIO_MASTER_KEY: '' });
  const assignments = ['LILIO_HOME', 'LILIO_CONFIG', 'LILIO_MASTER_KEY', 'NODE_OPTIONS', 'PATH']
    .map((k) => `${k}='${env[k] ?? ''}'`)
    .join(' ');
  const line = `env ${assignments} '${process.execPath}' '${LILIO_BIN}' ${args.map((a) => `'${a}'`).join(' ')}; echo "EXIT=$?"; sleep 600`;
  tmux('new-session', '-d', '-s', name, '-x', '200', '-y', '10', line);
  const deadline = Date.now() + 120_000;
  let screen = '';
  while (Date.now() < deadline) {
    screen = tmux('capture-pane', '-p', '-t', name);
    if (/EXIT=\d+/.test(screen)) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  tmux('kill-session', '-t', name);
  return screen;
}

t.test('put and get draw total, rate, elapsed and ETA on a terminal', { skip: !hasTmux && 'no tmux' }, async (t) => {
  const file = join(home, 'big.bin');
  writeFileSync(file, randomBytes(24 * 1024 * 1024));
  const created = execFileSync(process.execPath, [LILIO_BIN, 'bucket', 'create', 'progress'], {
    env: builtChildEnv({ LILIO_HOME: home, LILIO_CONFIG: '', LILIO_MASTER_KEY: '' }),
    encoding: 'utf8',
  });
  t.match(created, /created bucket progress/);

  const put = await onScreen('put', ['put', file, 'progress/big.bin']);
  t.match(put, /EXIT=0/, put);
  t.match(put, /put big\.bin \[#+\] 100% 24 MiB of 24 MiB/, 'the total');
  t.match(put, /\| [\d.]+ (KiB|MiB|GiB)\/s \|/, 'the rate');
  t.match(put, /elapsed \d+s/, 'the elapsed time');
  t.match(put, /ETA \d+s/, 'the ETA');
  t.match(put, /stored progress\/big\.bin: 24 MiB in 24 chunk\(s\)/, 'the result on a line of its own');

  const get = await onScreen('get', ['get', 'progress/big.bin', join(home, 'out.bin')]);
  t.match(get, /EXIT=0/, get);
  t.match(get, /get big\.bin \[#+\] 100% 24 MiB of 24 MiB \| [\d.]+ (KiB|MiB|GiB)\/s \| elapsed \d+s \| ETA \d+s/);

  const quiet = await onScreen('quiet', ['get', '--no-progress', 'progress/big.bin', join(home, 'out2.bin')]);
  t.match(quiet, /EXIT=0/, quiet);
  t.notMatch(quiet, /ETA/, '--no-progress: no bar');
});
