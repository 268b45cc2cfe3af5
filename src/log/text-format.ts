/** Fields every record has, shown in the line's fixed part rather than as key=value. */
const FIXED = new Set(['time', 'level', 'msg', 'name', 'pid', 'hostname']);

function quoted(value: string): string {
  return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
}

function field(key: string, value: unknown): string {
  if (value === null || value === undefined) return `${key}=${String(value)}`;
  if (typeof value === 'object') {
    // pino's error serializer: the message is what an operator reads; the stack stays in json logs.
    const message = (value as { message?: unknown }).message;
    if (key === 'err' && typeof message === 'string') return `${key}=${quoted(message)}`;
    return `${key}=${quoted(JSON.stringify(value))}`;
  }
  return `${key}=${quoted(String(value))}`;
}

/**
 * One pino record (a JSON line) as one text line:
 *   2026-12-02T22:30:00.123Z WARN  mount: put photos/a.jpg left 2 chunk(s) under-replicated bucket=photos
 * ISO timestamp, level, the process's role, the message, then the other fields as key=value.
 * A line that does not parse (never expected) is passed through unchanged.
 */
export function formatTextLine(json: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const level = String(record.level ?? 'info').toUpperCase();
  let line = `${String(record.time ?? new Date().toISOString())} ${level.padEnd(5)} `;
  if (record.name !== undefined) line += `${String(record.name)}: `;
  line += String(record.msg ?? '');
  for (const key of Object.keys(record)) {
    if (!FIXED.has(key)) line += ` ${field(key, record[key])}`;
  }
  return `${line}\n`;
}

/** A pino destination that writes text lines to another destination. */
export function textDestination(target: { write(text: string): unknown }): { write(json: string): boolean } {
  return {
    write(json: string): boolean {
      // pino hands over one record per call, newline included.
      target.write(formatTextLine(json.trimEnd()));
      return true;
    },
  };
}
