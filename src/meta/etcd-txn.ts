import type { ICompare, IRequestOp, ITxnRequest } from 'etcd3';
import { IntegrityError } from '../core/errors.js';

/**
 * One transaction being put together: compares and writes, with each key
 * written at most once (etcd refuses a key twice in one transaction).
 */
export class TxnPlan {
  private readonly compares = new Map<string, ICompare>();
  private readonly writes = new Map<string, IRequestOp>();
  private readonly rangeDeletes: IRequestOp[] = [];
  private size = 0;

  /** The key holds exactly this modification (so: exists, unchanged since read). */
  unchanged(key: Buffer, modRevision: string | number): void {
    this.compare({ key, target: 'Mod', result: 'Equal', mod_revision: modRevision });
  }

  absent(key: Buffer): void {
    this.compare({ key, target: 'Create', result: 'Equal', create_revision: 0 });
  }

  /** The key exists with this creation revision (it may have been rewritten since). */
  created(key: Buffer, createRevision: string | number): void {
    this.compare({ key, target: 'Create', result: 'Equal', create_revision: createRevision });
  }

  exists(key: Buffer): void {
    this.compare({ key, target: 'Create', result: 'Greater', create_revision: 0 });
  }

  /** No key lies in [key, end). */
  emptyRange(key: Buffer, end: Buffer): void {
    if (Buffer.compare(key, end) >= 0) return;
    this.compare({ key, range_end: end, target: 'Version', result: 'Equal', version: 0 });
  }

  /** Puts a value; with a lease, etcd deletes the key when the lease expires. */
  put(key: Buffer, value: Buffer, lease?: string): void {
    this.write(key, { request_put: lease === undefined ? { key, value } : { key, value, lease } });
  }

  delete(key: Buffer): void {
    this.write(key, { request_delete_range: { key } });
  }

  /** Deletes [key, end); the range must not hold a key written elsewhere in this transaction. */
  deleteRange(key: Buffer, end: Buffer): void {
    this.rangeDeletes.push({ request_delete_range: { key, range_end: end } });
    this.size += key.length + end.length;
  }

  has(key: Buffer): boolean {
    return this.writes.has(key.toString('latin1'));
  }

  /** Every key this transaction puts or deletes one by one. */
  writtenKeys(): Buffer[] {
    return [...this.writes.values()].map((op) => (op.request_put?.key ?? op.request_delete_range?.key)!);
  }

  get compareCount(): number {
    return this.compares.size;
  }

  get opCount(): number {
    return this.writes.size + this.rangeDeletes.length;
  }

  get bytes(): number {
    return this.size;
  }

  request(): ITxnRequest {
    return { compare: [...this.compares.values()], success: [...this.writes.values(), ...this.rangeDeletes] };
  }

  private compare(compare: ICompare): void {
    const id = `${compare.key!.toString('latin1')}\0${compare.range_end?.toString('latin1') ?? ''}\0${compare.target}`;
    const previous = this.compares.get(id);
    if (previous && JSON.stringify(previous) !== JSON.stringify(compare)) {
      throw new IntegrityError(`conflicting conditions planned on one etcd key (${compare.key!.toString()})`);
    }
    if (!previous) this.size += compare.key!.length + (compare.range_end?.length ?? 0) + 16;
    this.compares.set(id, compare);
  }

  private write(key: Buffer, op: IRequestOp): void {
    const id = key.toString('latin1');
    const previous = this.writes.get(id);
    if (previous) this.size -= sizeOf(previous);
    this.writes.set(id, op);
    this.size += sizeOf(op);
  }
}

function sizeOf(op: IRequestOp): number {
  const put = op.request_put;
  if (put) return (put.key?.length ?? 0) + (put.value?.length ?? 0) + 8;
  return (op.request_delete_range?.key?.length ?? 0) + 8;
}
