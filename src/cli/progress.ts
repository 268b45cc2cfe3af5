import { formatSize } from '../config/size.js';

/** Shown only for objects at least this large. */
const MIN_BYTES = 8 * 1024 * 1024;

/**
 * A one-line progress bar on stderr, drawn only when stderr is a terminal and
 * the transfer is large, so pipes and scripts never see it.
 */
export class Progress {
  private done = 0;
  private lastDraw = 0;
  private readonly started = performance.now();
  private readonly enabled: boolean;

  constructor(
    private readonly label: string,
    private readonly total: number | undefined,
    stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.stream = stream;
    this.enabled = Boolean(stream.isTTY) && (total === undefined || total >= MIN_BYTES);
  }

  private readonly stream: NodeJS.WriteStream;

  advance(bytes: number): void {
    this.done += bytes;
    if (!this.enabled) return;
    const now = performance.now();
    if (now - this.lastDraw < 100) return;
    this.lastDraw = now;
    this.draw();
  }

  finish(): void {
    if (!this.enabled) return;
    this.draw();
    this.stream.write('\n');
  }

  private draw(): void {
    const seconds = (performance.now() - this.started) / 1000;
    const rate = seconds > 0 ? `${formatSize(this.done / seconds)}/s` : '';
    let bar = '';
    if (this.total) {
      const width = 30;
      const filled = Math.round((this.done / this.total) * width);
      bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.floor((this.done / this.total) * 100)}% `;
    }
    this.stream.write(`\r${this.label} ${bar}${formatSize(this.done)} ${rate}\u001b[K`);
  }
}
