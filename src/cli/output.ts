import type { EntryKind } from '../core/types.js';

/** Renders rows as an aligned text table (first row is the header). */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) {
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, cell.length);
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function formatTime(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
}

const TYPE_LETTER: Record<EntryKind, string> = {
  file: '-',
  dir: 'd',
  symlink: 'l',
  fifo: 'p',
  socket: 's',
  chardev: 'c',
  blockdev: 'b',
};

export function formatMode(mode: number, kind: EntryKind): string {
  const type = TYPE_LETTER[kind];
  const bits = 'rwxrwxrwx';
  let out = type;
  for (let i = 0; i < 9; i++) out += mode & (1 << (8 - i)) ? bits[i] : '-';
  return out;
}

/** An extended attribute value as getfattr shows it: "text" when printable, 0s + base64 otherwise. */
export function formatXattrValue(value: Buffer): string {
  const text = value.toString('utf8');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what makes a value unprintable
  const printable = Buffer.from(text, 'utf8').equals(value) && !/[\u0000-\u001f\u007f]/.test(text);
  return printable ? JSON.stringify(text) : `0s${value.toString('base64')}`;
}
