import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';

// The alerting rules shipped in prometheus/ are valid to Debian's promtool, fire on the series
// Lilio exports (promtool's rule unit tests), and are loaded by the compose stack's scrape config.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PROMTOOL = '/usr/bin/promtool';

function promtool(args: string[]) {
  return spawnSync(PROMTOOL, args, { cwd: ROOT, encoding: 'utf8' });
}

t.test('promtool check rules accepts the alerting rules', async (t) => {
  const result = promtool(['check', 'rules', 'prometheus/alerts.yml']);
  t.equal(result.status, 0, `promtool check rules:\n${result.stdout}${result.stderr}`);
  const count = Number(/SUCCESS: (\d+) rules found/.exec(result.stdout)?.[1]);
  t.ok(count >= 5, `${count} rules`);
  const text = readFileSync(`${ROOT}prometheus/alerts.yml`, 'utf8');
  // What an operator must hear about, by name.
  for (const alert of [
    'LilioProcessDown',
    'LilioBackendDown',
    'LilioQuorumWriteFailures',
    'LilioRepairBacklogGrowing',
    'LilioGarbageBacklog',
    'LilioMountErrors',
  ]) {
    t.match(text, new RegExp(`- alert: ${alert}\\n`), alert);
  }
});

t.test('the rules fire (and stay quiet) as their unit tests say', async (t) => {
  const result = promtool(['test', 'rules', 'prometheus/alerts.test.yml']);
  t.equal(result.status, 0, `promtool test rules:\n${result.stdout}${result.stderr}`);
});

t.test('prometheus.yml loads the rules', async (t) => {
  const result = promtool(['check', 'config', 'prometheus/prometheus.yml']);
  t.equal(result.status, 0, `promtool check config:\n${result.stdout}${result.stderr}`);
  t.match(result.stdout, /1 rule files found/);
});

t.test('a broken rule is refused, so the checks above can fail', async (t) => {
  const result = spawnSync(PROMTOOL, ['check', 'rules', '/dev/stdin'], {
    input: 'groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: lilio_backend_health ==\n',
    encoding: 'utf8',
  });
  t.not(result.status, 0, 'promtool refuses an expression that does not parse');
});
