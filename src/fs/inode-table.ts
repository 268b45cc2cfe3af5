/**
 * Inode numbers for the native FUSE session: the kernel names files by node
 * id, the Vfs by path. A number is allocated the first time the kernel is
 * handed a path (LOOKUP, CREATE, READDIRPLUS...) and dropped when it forgets
 * it (the session counts the references and calls forget once). Renames move
 * the numbers with their paths, so the kernel's cached inodes stay right; an
 * unlinked or replaced inode is detached: its open handles still work (the
 * Vfs serves them by descriptor), but no path leads to it any more.
 */
export const ROOT_INO = 1;

interface Node {
  path: string;
  /** No name leads here any more (unlinked, renamed over). */
  detached: boolean;
}

export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

export class InodeTable {
  private readonly byIno = new Map<number, Node>([[ROOT_INO, { path: '/', detached: false }]]);
  private readonly byPath = new Map<string, number>([['/', ROOT_INO]]);
  private nextIno = ROOT_INO + 1;

  get size(): number {
    return this.byIno.size;
  }

  /** The path of a live inode; ESTALE-like failures are the caller's (undefined). */
  path(ino: number): string | undefined {
    return this.byIno.get(ino)?.path;
  }

  isDetached(ino: number): boolean {
    return this.byIno.get(ino)?.detached ?? true;
  }

  /** The number for `path`, allocated if the kernel does not know it yet. */
  ensure(path: string): number {
    const known = this.byPath.get(path);
    if (known !== undefined) return known;
    const ino = this.nextIno++;
    this.byIno.set(ino, { path, detached: false });
    this.byPath.set(path, ino);
    return ino;
  }

  /** The number for `path` if one is allocated (readdir's d_ino), without allocating. */
  peek(path: string): number | undefined {
    return this.byPath.get(path);
  }

  /** The kernel dropped its last reference. */
  forget(ino: number): void {
    if (ino === ROOT_INO) return;
    const node = this.byIno.get(ino);
    if (!node) return;
    this.byIno.delete(ino);
    if (!node.detached && this.byPath.get(node.path) === ino) this.byPath.delete(node.path);
  }

  /** `path` no longer names a file (unlink, rmdir): its inode lives on, detached, until forgotten. */
  detach(path: string): void {
    const ino = this.byPath.get(path);
    if (ino === undefined) return;
    this.byPath.delete(path);
    const node = this.byIno.get(ino);
    if (node) node.detached = true;
  }

  /** RENAME_EXCHANGE of two non-directories: each inode takes the other's path. */
  exchange(a: string, b: string): void {
    const inoA = this.byPath.get(a);
    const inoB = this.byPath.get(b);
    this.byPath.delete(a);
    this.byPath.delete(b);
    for (const [ino, path] of [
      [inoA, b],
      [inoB, a],
    ] as const) {
      if (ino === undefined) continue;
      this.byPath.set(path, ino);
      const node = this.byIno.get(ino);
      if (node) node.path = path;
    }
  }

  /** `from` (and everything below it) is now `to`; whatever `to` named is detached. */
  rename(from: string, to: string): void {
    this.detach(to);
    const prefix = `${from}/`;
    const moved: [string, number][] = [];
    for (const [path, ino] of this.byPath) {
      if (path === from || path.startsWith(prefix)) moved.push([path, ino]);
    }
    for (const [path] of moved) this.byPath.delete(path);
    for (const [path, ino] of moved) {
      const next = to + path.slice(from.length);
      // A stale name below the target (it was empty, so only forgotten-late entries) gives way.
      this.detach(next);
      this.byPath.set(next, ino);
      const node = this.byIno.get(ino);
      if (node) node.path = next;
    }
  }
}
