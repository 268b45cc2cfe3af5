import { isDeepStrictEqual } from 'node:util';
import type { Test } from 'tap';
import { MemoryMetadataStore } from '../../src/meta/memory.js';
import type { MetadataStore } from '../../src/meta/store.js';
import { bucketRecord, chunkRef, objectDraft } from './meta-fixtures.js';

/**
 * Random puts, deletes, renames and directory renames applied to a store and
 * to the memory store side by side: every outcome (result or error code) must
 * match, and so must every listing and the garbage queue along the way.
 * Keys are drawn from a small set of names and directories, and chunks from a
 * small pool shared between records, so directories empty out and come back,
 * markers replace and are replaced, and garbage is queued and rescued.
 */

/** A tiny seeded PRNG, so a failing sequence can be replayed. */
export function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

async function outcome<T>(promise: Promise<T>): Promise<unknown> {
  try {
    return { ok: await promise };
  } catch (err) {
    return { code: (err as { code?: string }).code };
  }
}

async function everything(store: MetadataStore, levels: string[]) {
  const listings: unknown[] = [];
  for (const prefix of levels) {
    for (const delimiter of ['/', undefined] as const) {
      const pages: unknown[] = [];
      let startAfter: string | undefined;
      do {
        const page = await store.list('photos', { prefix, delimiter, startAfter, limit: 3 });
        pages.push(page);
        startAfter = page.next;
      } while (startAfter !== undefined);
      listings.push(pages);
    }
  }
  // queuedAt is each store's own clock reading; which chunks are queued must agree.
  const garbage = (await store.peekGarbage!(undefined, 10_000)).map((entry) => entry.chunk);
  return { listings, garbage };
}

/**
 * Runs `steps` random operations on `store` (which holds no bucket yet) and on
 * a fresh memory store. Versions are each store's own, so records are compared
 * without them where a store may number differently (`ignoreVersions`).
 */
export async function differential(
  t: Test,
  store: MetadataStore,
  options: { seed: number; steps: number; ignoreVersions?: boolean },
): Promise<void> {
  const model = new MemoryMetadataStore();
  const rand = random(options.seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const segments = ['a', 'b', 'é', '😀', 'a b'];
  const dirPath = () => `${Array.from({ length: 1 + Math.floor(rand() * 2) }, () => pick(segments)).join('/')}/`;
  const key = () => (rand() < 0.2 ? dirPath() : rand() < 0.5 ? pick(segments) : dirPath() + pick(segments));
  const chunks = Array.from({ length: 12 }, () => chunkRef());
  const strip = (value: unknown): unknown => (options.ignoreVersions ? withoutVersions(value) : value);
  for (const s of [store, model]) await s.createBucket(bucketRecord('photos'));
  const outcomes = new Map<string, number>();
  for (let step = 0; step < options.steps; step++) {
    const op = rand();
    let run: (store: MetadataStore) => Promise<unknown>;
    if (op < 0.45) {
      const draft = objectDraft('photos', key(), {
        chunks: [pick(chunks), pick(chunks)].filter((c, i, all) => all.indexOf(c) === i),
      });
      const expect = pick(['any', 'absent', { version: Math.floor(rand() * step) }] as const);
      // A version expectation only means the same thing to two stores that number alike.
      const usable = options.ignoreVersions && typeof expect === 'object' ? 'any' : expect;
      run = (s) => s.putObject(structuredClone(draft), usable);
    } else if (op < 0.65) {
      const k = key();
      run = (s) => s.deleteObject('photos', k);
    } else if (op < 0.85) {
      const [from, to, replace] = [key(), key(), rand() < 0.5];
      run = (s) => s.renameObject('photos', from, to, { replace });
    } else {
      const [from, to] = [dirPath(), dirPath()];
      run = (s) => s.renamePrefix('photos', from, to);
    }
    const [got, want] = [strip(await outcome(run(store))), strip(await outcome(run(model)))];
    const tally = `${op < 0.45 ? 'put' : op < 0.65 ? 'delete' : op < 0.85 ? 'rename' : 'renamePrefix'} ${(want as { code?: string }).code ?? 'ok'}`;
    outcomes.set(tally, (outcomes.get(tally) ?? 0) + 1);
    if (!isDeepStrictEqual(got, want)) {
      t.strictSame(got, want, `step ${step}`);
      return;
    }
    if (step % 100 === 99 || step === options.steps - 1) {
      const levels = ['', 'a', 'a/', 'é/', '😀/a/', 'a b/', 'a/a b/', '😀/'];
      const [mine, theirs] = [await everything(store, levels), await everything(model, levels)];
      if (!t.same(strip(mine), strip(theirs), `state after step ${step}`)) return;
    }
  }
  t.comment(
    [...outcomes]
      .sort()
      .map(([what, n]) => `${what}: ${n}`)
      .join(', '),
  );
}

function withoutVersions(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutVersions);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([k]) => k !== 'version')
        .map(([k, v]) => [k, withoutVersions(v)]),
    );
  }
  return value;
}
