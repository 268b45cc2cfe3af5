import type { Etcd3, IWatchResponse, Watcher } from 'etcd3';

/**
 * The store's generation, driven by one etcd watch on the whole prefix:
 * every batch of changes any process commits moves it, so caches that
 * compare generations (bucket contexts, listed attributes) drop what they
 * hold without polling. Whenever the watch may have missed something — not
 * yet connected, disconnected, cancelled because its revision was compacted
 * — generation() answers a new number on every call, so nothing is trusted
 * until the watch is back; a compacted watch is re-established from the
 * current revision.
 */
export class ChangeFeed {
  private changes = 0;
  private live = false;
  /** The newest revision the watch has reported (events up to it have been seen). */
  seen = 0;
  private closed = false;
  private watcher: Watcher | undefined;
  private restart: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    /** Called with the key of every change seen. */
    private readonly onChange: (key: Buffer) => void,
    /** Called whenever changes may have been missed. */
    private readonly onLost: () => void,
  ) {
    this.start();
  }

  /** Whether the watch is up: only then may caches trust what they hold. */
  get connected(): boolean {
    return this.live;
  }

  generation(): number {
    return this.live ? this.changes : ++this.changes;
  }

  /** A commit of this process: the generation moves at once, not when the watch brings the event back. */
  bump(): void {
    this.changes++;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.live = false;
    clearTimeout(this.restart);
    const watcher = this.watcher;
    this.watcher = undefined;
    watcher?.removeAllListeners();
    watcher?.on('error', () => undefined);
    await watcher?.cancel().catch(() => undefined);
  }

  private start(): void {
    if (this.closed) return;
    const watcher = this.client.watch().prefix(this.prefix).watcher();
    this.watcher = watcher;
    watcher.on('connected', (response: IWatchResponse) => {
      this.seen = Math.max(this.seen, Number(response.header.revision));
      this.live = true;
      this.changes++;
    });
    watcher.on('disconnected', () => this.lost());
    watcher.on('data', (response: IWatchResponse) => {
      if (response.events.length > 0) {
        this.changes++;
        for (const event of response.events) this.onChange(event.kv.key);
      }
      this.seen = Math.max(this.seen, Number(response.header.revision));
    });
    // Cancelled by etcd (its start revision was compacted away, or an error): start over from now.
    watcher.on('error', () => {
      this.lost();
      if (this.watcher === watcher) this.watcher = undefined;
      watcher.removeAllListeners();
      watcher.on('error', () => undefined);
      void watcher.cancel().catch(() => undefined);
      this.restart = setTimeout(() => this.start(), 200);
      this.restart.unref();
    });
  }

  private lost(): void {
    this.live = false;
    this.changes++;
    this.onLost();
  }
}
