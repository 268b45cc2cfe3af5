import { pino } from 'pino';
import t from 'tap';
import { MiB } from '../../src/config/schema.js';
import { pattern, pieces, testEngine } from '../fixtures/engine.js';

interface Record {
  level: string;
  msg: string;
  bucket?: string;
  key?: string;
  underReplicated?: number;
  chunks?: number;
  backends?: string[];
}

/** An engine whose log records are kept, as JSON, for the test to read. */
async function engineWithLog() {
  const records: Record[] = [];
  const logger = pino(
    { level: 'debug', formatters: { level: (label) => ({ level: label }) } },
    { write: (line: string) => void records.push(JSON.parse(line)) },
  );
  const engine = await testEngine({}, { logger });
  await engine.lilio.createBucket('photos', { chunkSize: MiB });
  return { ...engine, records };
}

t.test('a put that left chunks under-replicated logs one warning naming the backend', async (t) => {
  const { lilio, faults, records } = await engineWithLog();
  faults.get('mem-3')!.failPuts = true;
  const data = pattern(3 * MiB + 5);
  const record = await lilio.putObject('photos', 'a.bin', pieces(data));
  t.equal(record.chunks.length, 4);
  await lilio.close();
  const shortfall = records.filter((r) => r.level === 'warn' && r.key === 'a.bin');
  t.equal(shortfall.length, 1, 'one warning for the put');
  const placedOnMem3 = record.chunks.filter((c) => c.replicas.includes('mem-3')).length;
  t.ok(placedOnMem3 > 0, `${placedOnMem3} chunk(s) were placed on mem-3`);
  t.match(shortfall[0], {
    bucket: 'photos',
    key: 'a.bin',
    underReplicated: placedOnMem3,
    chunks: 4,
    backends: ['mem-3'],
  });
  t.match(
    shortfall[0]!.msg,
    new RegExp(`^stored photos/a\\.bin with ${placedOnMem3} of 4 chunk\\(s\\) under-replicated \\(mem-3: `),
  );
});

t.test('a put on healthy backends logs nothing, nor does an inline object', async (t) => {
  const { lilio, records } = await engineWithLog();
  await lilio.putObject('photos', 'b.bin', pieces(pattern(2 * MiB)));
  await lilio.putObject('photos', 'small', pieces(pattern(100)));
  await lilio.close();
  t.same(
    records.filter((r) => r.key !== undefined),
    [],
  );
});

t.test('a write abandoned after a shortfall reports nothing later', async (t) => {
  const { lilio, faults, records } = await engineWithLog();
  faults.get('mem-1')!.failPuts = true;
  const writer = await lilio.writer('photos', 'gone.bin');
  await writer.write(pattern(2 * MiB));
  await writer.abort();
  // The next put's fresh chunks are its own: nothing of the abandoned write shows up.
  faults.get('mem-1')!.heal();
  await lilio.putObject('photos', 'c.bin', pieces(pattern(MiB)));
  await lilio.close();
  t.same(
    records.filter((r) => r.key !== undefined),
    [],
  );
});
