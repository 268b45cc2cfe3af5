import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { UsageError } from '../../src/core/errors.js';
import { createProcessLog, parseLogFormat, parseLogLevel } from '../../src/log/logger.js';
import { formatTextLine } from '../../src/log/text-format.js';

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

t.test('text lines: ISO time, level, role, message, then key=value', async (t) => {
  const line = formatTextLine(
    JSON.stringify({
      level: 'warn',
      time: '2026-12-02T22:30:00.123Z',
      pid: 7,
      name: 'mount',
      msg: 'stored a/b with 1 of 2 chunk(s) under-replicated',
      bucket: 'a',
      key: 'with space',
      backends: ['n1'],
      err: { type: 'Error', message: 'boom', stack: 'Error: boom\n    at x' },
    }),
  );
  t.equal(
    line,
    '2026-12-02T22:30:00.123Z WARN  mount: stored a/b with 1 of 2 chunk(s) under-replicated bucket=a key="with space" backends="[\\"n1\\"]" err=boom\n',
  );
  t.equal(formatTextLine('not json'), 'not json\n', 'a line that does not parse passes through');
});

function scratch(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'lilio-log-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('json records to a file, filtered by level', async (t) => {
  const file = join(scratch(t), 'node.log');
  const log = createProcessLog({ name: 'node', level: 'warn', format: 'json', file });
  log.logger.info('not written');
  log.logger.debug('not written either');
  log.logger.warn({ dir: '/srv' }, 'disk slow');
  log.logger.error({ err: new Error('gone') }, 'failed');
  log.close();
  const records = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  t.same(
    records.map((r) => [r.level, r.msg, r.name]),
    [
      ['warn', 'disk slow', 'node'],
      ['error', 'failed', 'node'],
    ],
  );
  for (const r of records) t.match(r.time, ISO);
  t.equal(records[0]!.dir, '/srv');
  t.match(records[1]!.err, { message: 'gone' });
});

t.test('text records to a file', async (t) => {
  const file = join(scratch(t), 'mount.log');
  const log = createProcessLog({ name: 'mount', level: 'debug', format: 'text', file });
  log.logger.debug({ op: 'getattr' }, 'looked');
  log.logger.info('mounted /mnt/x');
  log.close();
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  t.equal(lines.length, 2);
  t.match(lines[0], /^\S+Z DEBUG mount: looked op=getattr$/);
  t.match(lines[1], /^\S+Z INFO {2}mount: mounted \/mnt\/x$/);
  t.match(lines[1]!.split(' ')[0], ISO);
});

t.test('levels and formats are checked', async (t) => {
  t.equal(parseLogLevel('debug'), 'debug');
  t.equal(parseLogFormat('json'), 'json');
  t.throws(() => parseLogLevel('verbose'), UsageError);
  t.throws(() => parseLogFormat('xml'), UsageError);
});
