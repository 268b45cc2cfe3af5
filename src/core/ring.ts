import { createHash } from 'node:crypto';
import { InvalidError, NotFoundError } from './errors.js';

/**
 * Consistent hashing with virtual nodes. Each physical node (a backend name)
 * owns `virtualNodes` points on a uint32 circle; a key belongs to the first
 * points clockwise from its own hash. Adding or removing one node moves only
 * the keys on the arcs that node gains or loses (~1/N of them), where modulo
 * hashing would move almost all.
 */

const MAX_COLLISION_RETRIES = 64;
const HASH_SPACE = 2 ** 32;

/** First four bytes of SHA-256, big-endian: the same number on every machine and process. */
export function ringHash(key: string): number {
  return createHash('sha256').update(key).digest().readUInt32BE(0);
}

/** The string hashed for a virtual node; `retry` is set only when resolving a collision. */
export function virtualNodeKey(node: string, index: number, retry?: number): string {
  return retry === undefined ? `${node}#${index}` : `${node}#${index}#retry${retry}`;
}

function compareNames(a: string, b: string): number {
  // Code-unit order, not localeCompare: placement must not depend on the host's locale.
  return a < b ? -1 : a > b ? 1 : 0;
}

export class HashRing {
  readonly virtualNodes: number;
  /** Primary (pre-collision) positions per node, kept so a rebuild does not rehash everything. */
  private readonly primaries = new Map<string, Uint32Array>();
  private positions = new Uint32Array(0);
  /** owners[i] is the physical node that owns positions[i]. */
  private owners: string[] = [];

  constructor(nodes: readonly string[], virtualNodes = 150) {
    if (!Number.isInteger(virtualNodes) || virtualNodes < 1) {
      throw new InvalidError(`virtual nodes per backend must be a positive integer, got ${virtualNodes}`);
    }
    this.virtualNodes = virtualNodes;
    for (const node of nodes) this.admit(node);
    this.rebuild();
  }

  addNode(name: string): void {
    this.admit(name);
    this.rebuild();
  }

  removeNode(name: string): void {
    if (!this.primaries.delete(name)) throw new NotFoundError(`node "${name}" is not on the ring`);
    this.rebuild();
  }

  /** Physical nodes, sorted by name. */
  get nodes(): string[] {
    return [...this.primaries.keys()].sort(compareNames);
  }

  /** Number of points on the circle (virtualNodes per node). */
  get size(): number {
    return this.positions.length;
  }

  /**
   * The replica set for a key: n distinct physical nodes, in the order met
   * walking clockwise from the key's hash. The first is the primary.
   */
  place(key: string, n: number): string[] {
    const nodeCount = this.primaries.size;
    if (!Number.isInteger(n) || n < 1 || n > nodeCount) {
      throw new InvalidError(`cannot place ${n} replicas on a ring of ${nodeCount} backends`);
    }
    const positions = this.positions;
    const total = positions.length;
    let index = this.firstAtOrAfter(ringHash(key));
    const chosen: string[] = [];
    // n is small (the replica count), so a linear `includes` beats a Set here.
    for (let step = 0; step < total && chosen.length < n; step++) {
      const owner = this.owners[index]!;
      if (!chosen.includes(owner)) chosen.push(owner);
      index = index + 1 === total ? 0 : index + 1;
    }
    return chosen;
  }

  /** Fraction of the hash space each node owns as primary; the values sum to 1. */
  shares(): Map<string, number> {
    const result = new Map<string, number>();
    for (const node of this.primaries.keys()) result.set(node, 0);
    const positions = this.positions;
    const total = positions.length;
    if (total === 0) return result;
    // A point owns the arc from its predecessor (exclusive) up to itself; the
    // first point's arc wraps around from the last one.
    let previous = positions[total - 1]! - HASH_SPACE;
    for (let i = 0; i < total; i++) {
      const position = positions[i]!;
      const owner = this.owners[i]!;
      result.set(owner, result.get(owner)! + (position - previous) / HASH_SPACE);
      previous = position;
    }
    return result;
  }

  private admit(name: string): void {
    if (typeof name !== 'string' || name.length === 0) throw new InvalidError('a ring node needs a non-empty name');
    if (this.primaries.has(name)) throw new InvalidError(`node "${name}" is already on the ring`);
    const points = new Uint32Array(this.virtualNodes);
    for (let i = 0; i < points.length; i++) points[i] = ringHash(virtualNodeKey(name, i));
    this.primaries.set(name, points);
  }

  /**
   * Lays out every point again. Collisions are settled in a fixed order (node
   * name, then virtual-node index) so the ring depends only on the set of
   * nodes, never on the order they were added in; the loser of a collision is
   * rehashed to a fresh random point rather than nudged to position+1, which
   * would cluster points (the bug the original design hit).
   */
  private rebuild(): void {
    const names = [...this.primaries.keys()].sort(compareNames);
    const taken = new Map<number, string>();
    for (const name of names) {
      const points = this.primaries.get(name)!;
      for (let i = 0; i < points.length; i++) {
        let position = points[i]!;
        for (let retry = 0; taken.has(position); retry++) {
          if (retry === MAX_COLLISION_RETRIES) {
            throw new InvalidError(`ring position for "${virtualNodeKey(name, i)}" keeps colliding`);
          }
          position = ringHash(virtualNodeKey(name, i, retry));
        }
        taken.set(position, name);
      }
    }
    const positions = Uint32Array.from(taken.keys()).sort();
    this.positions = positions;
    this.owners = Array.from(positions, (position) => taken.get(position)!);
  }

  /** Index of the first point >= hash, wrapping to 0 past the last point. */
  private firstAtOrAfter(hash: number): number {
    const positions = this.positions;
    let low = 0;
    let high = positions.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (positions[mid]! < hash) low = mid + 1;
      else high = mid;
    }
    return low === positions.length ? 0 : low;
  }
}
