import type { IKeyValue } from 'etcd3';

/**
 * Key-values (and absences) as last read, kept coherent by the store's watch:
 * every change the watch reports drops its key, and nothing is trusted while
 * the watch is down. A read answered from here is as fresh as the watch,
 * which is what every cache of the store (generation, bucket records) rests
 * on; the kernel's own 1 s caches are far older. It serves only point reads
 * of entries and directories (lookups and getObject); commits never plan on
 * it, they read and compare.
 *
 * A value read at revision R is kept only if the watch has not already
 * reported anything past R (it could have been a change to this key that
 * the read missed). A commit of this process drops the keys it wrote at
 * once, before its own event comes back.
 */
interface Cached {
  kv: IKeyValue | null;
  /** The revision it was read at; it holds from there until the watch reports a change. */
  revision: number;
}

export class KeyCache {
  private readonly kvs = new Map<string, Cached>();

  constructor(
    /** Whether the watch is up, and the newest revision it has reported. */
    private readonly watch: { connected: boolean; seen: number },
    // About 500 bytes each: a few tens of MB at most in a mount.
    private readonly max = 50_000,
  ) {}

  /** The cached value (kv null: known absent), or undefined when not known. */
  get(key: Buffer): Cached | undefined {
    if (!this.watch.connected) return undefined;
    return this.kvs.get(key.toString('latin1'));
  }

  fill(key: Buffer, kv: IKeyValue | undefined, revision: number): void {
    if (!this.watch.connected || revision < this.watch.seen) return;
    if (this.kvs.size >= this.max) this.kvs.clear();
    this.kvs.set(key.toString('latin1'), { kv: kv ?? null, revision });
  }

  drop(key: Buffer): void {
    this.kvs.delete(key.toString('latin1'));
  }

  clear(): void {
    this.kvs.clear();
  }
}
