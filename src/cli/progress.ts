import { SingleBar } from 'cli-progress';
import { formatSize } from '../config/size.js';

/** Shown only for transfers at least this large: a small one is over before a bar could tell anything. */
const MIN_BYTES = 8 * 1024 * 1024;

/**
 * The progress bar of put, get and cp: total, rate, elapsed time and ETA,
 * drawn by cli-progress on stderr. Drawn only when stderr is a terminal
 * (and the transfer is large, or of unknown size), so pipes, scripts and
 * logs never see it; --no-progress turns it off.
 */
export class Progress {
  private done = 0;
  private readonly started = performance.now();
  private readonly bar?: SingleBar;

  constructor(
    private readonly label: string,
    private readonly total: number | undefined,
    options: { enabled?: boolean; stream?: NodeJS.WriteStream } = {},
  ) {
    const stream = options.stream ?? process.stderr;
    const wanted = options.enabled ?? true;
    if (!wanted || !stream.isTTY || (total !== undefined && total < MIN_BYTES)) return;
    const known = total !== undefined;
    this.bar = new SingleBar({
      stream,
      format: known
        ? '{label} [{bar}] {percentage}% {done} of {size} | {rate} | elapsed {duration_formatted} | ETA {eta_formatted}'
        : '{label} {done} | {rate} | elapsed {duration_formatted}',
      barsize: 24,
      barCompleteChar: '#',
      barIncompleteChar: '.',
      hideCursor: true,
      // A redraw every 200 ms is smooth enough and costs nothing next to the transfer.
      fps: 5,
      etaBuffer: 50,
      etaAsynchronousUpdate: true,
    });
    this.bar.start(total ?? 0, 0, this.payload());
  }

  private payload(): Record<string, string> {
    const seconds = (performance.now() - this.started) / 1000;
    return {
      label: this.label,
      done: formatSize(this.done),
      size: this.total === undefined ? '?' : formatSize(this.total),
      rate: seconds > 0 ? `${formatSize(this.done / seconds)}/s` : '-',
    };
  }

  advance(bytes: number): void {
    this.done += bytes;
    this.bar?.update(this.total === undefined ? 0 : this.done, this.payload());
  }

  /** Draws the final state and ends the line; after a failure too, so the error starts on a line of its own. */
  finish(): void {
    if (!this.bar) return;
    this.bar.update(this.total === undefined ? 0 : this.done, this.payload());
    this.bar.stop();
  }
}
