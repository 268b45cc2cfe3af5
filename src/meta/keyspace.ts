/**
 * Key arithmetic shared by every metadata store: the order keys sort in and
 * the directory levels a key belongs to. Directories are key prefixes ending
 * with '/'; a key ending with '/' is a directory marker.
 */

/**
 * Code point order, which is UTF-8 byte order: what SQLite (BINARY collation)
 * and etcd compare, and what S3 lists in. JavaScript's `<` compares UTF-16 code
 * units instead, which puts U+E000..U+FFFF after astral characters.
 */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (D800..DFFF) stand for code points above FFFF: lift them over E000..FFFF.
    if (x >= 0xd800 && y >= 0xd800) return surrogateRank(x) - surrogateRank(y);
    return x - y;
  }
  return a.length - b.length;
}

function surrogateRank(unit: number): number {
  return unit >= 0xe000 ? unit - 0x800 : unit + 0x2000;
}

export function isMarker(key: string): boolean {
  return key.endsWith('/');
}

/** The level a key is listed at: 'a/b/c' -> 'a/b/', marker 'a/b/' -> 'a/', 'a' -> ''. */
export function parentOf(key: string): string {
  const end = isMarker(key) ? key.length - 1 : key.length;
  if (end <= 0) return '';
  const slash = key.lastIndexOf('/', end - 1);
  return slash < 0 ? '' : key.slice(0, slash + 1);
}

/** The level a listing prefix selects from: 'a/fo' -> 'a/', 'a/' -> 'a/'. */
export function levelOf(prefix: string): string {
  return prefix.slice(0, prefix.lastIndexOf('/') + 1);
}

/**
 * Every directory a key keeps alive: 'a/b/c' -> ['a/', 'a/b/'], and a marker
 * counts for itself: 'a/b/' -> ['a/', 'a/b/'].
 */
export function dirsOf(key: string): string[] {
  const dirs: string[] = [];
  for (let slash = key.indexOf('/'); slash >= 0; slash = key.indexOf('/', slash + 1)) {
    dirs.push(key.slice(0, slash + 1));
  }
  return dirs;
}

/**
 * The smallest string greater than every string starting with `prefix`, or
 * undefined when there is none (empty prefix, or only U+10FFFF). Appending
 * U+10FFFF instead would miss keys that continue after such a character.
 */
export function prefixEnd(prefix: string): string | undefined {
  const points = Array.from(prefix);
  while (points.length > 0) {
    const cp = points.pop()!.codePointAt(0)!;
    if (cp < 0x10ffff) {
      const next = cp + 1 === 0xd800 ? 0xe000 : cp + 1;
      return points.join('') + String.fromCodePoint(next);
    }
  }
  return undefined;
}

/**
 * The smallest string strictly greater than `key`: turns "after key" into an
 * inclusive bound, so a range has one shape whether it starts at a prefix or
 * resumes after a key.
 */
export function keySuccessor(key: string): string {
  return `${key}\0`;
}

/** Where a listing starts (inclusive): at the prefix, or just after `startAfter` when that is further. */
export function listStart(prefix: string, startAfter: string | undefined): string {
  if (startAfter === undefined) return prefix;
  const after = keySuccessor(startAfter);
  return compareKeys(after, prefix) > 0 ? after : prefix;
}
