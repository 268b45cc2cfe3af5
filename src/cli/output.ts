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

const C_ESCAPES: Record<string, string> = {
  '\u0007': '\\a',
  '\b': '\\b',
  '\t': '\\t',
  '\n': '\\n',
  '\v': '\\v',
  '\f': '\\f',
  '\r': '\\r',
  '\\': '\\\\',
};

/**
 * A key or name as human output shows it, like `ls -b`: control characters
 * (C0, DEL, C1) become C escapes (`\n`, `\x1b`), and a backslash is doubled
 * so the escaped form reads back unambiguously. A key holding an escape
 * sequence then cannot move the cursor or recolour the terminal, and a key
 * with a newline cannot pass for two lines. --json prints keys as they are.
 */
export function escapeName(name: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this escapes
  return name.replace(/[\u0000-\u001f\u007f-\u009f\\]/g, (c) => {
    const code = c.charCodeAt(0);
    return C_ESCAPES[c] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : c);
  });
}

/** Sizes as `ls -lh` prints them: 512, 4.0K, 1.5M, 12G (powers of 1024, one decimal under 10). */
export function humanSize(bytes: number): string {
  if (bytes < 1024) return String(bytes);
  const units = ['K', 'M', 'G', 'T', 'P', 'E'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  // ls rounds up, so a size is never shown smaller than it is.
  const shown = value < 10 ? (Math.ceil(value * 10) / 10).toFixed(1) : String(Math.ceil(value));
  return `${shown}${units[unit]}`;
}

/** Prints a value as the stable JSON of a --json flag: two-space indented, one document. */
export function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}
