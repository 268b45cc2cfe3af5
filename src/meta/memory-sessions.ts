import { randomBytes } from 'node:crypto';
import { NotFoundError } from '../core/errors.js';
import type { ChunkRef } from '../core/types.js';
import { checkTtl } from './commit-rules.js';
import type { SessionInfo, SessionRecord } from './store.js';

interface SessionState {
  info: SessionInfo;
  expiresAt: number;
  openFiles: number;
  writes: Map<string, ChunkRef>;
  reads: Map<string, string[]>;
}

/**
 * The sessions and holds of MemoryMetadataStore. Synchronous, so the store
 * can consult them inside its own (await-free, hence atomic) methods.
 */
export class SessionTable {
  private readonly sessions = new Map<string, SessionState>();
  /** Write-held chunk id -> the session holding it, so a commit clears its holds in O(its chunks). */
  private readonly writers = new Map<string, string>();
  private holdIds = 0;

  open(info: SessionInfo, ttlMs: number): string {
    checkTtl(ttlMs);
    const id = randomBytes(8).toString('hex');
    this.sessions.set(id, {
      info: { ...info },
      expiresAt: Date.now() + ttlMs,
      openFiles: 0,
      writes: new Map(),
      reads: new Map(),
    });
    return id;
  }

  renew(id: string, ttlMs: number, openFiles: number): boolean {
    checkTtl(ttlMs);
    const state = this.live(id);
    if (!state) return false;
    state.expiresAt = Date.now() + ttlMs;
    state.openFiles = openFiles;
    return true;
  }

  /** Ends a session; returns its write holds, which the caller queues as garbage. */
  close(id: string): ChunkRef[] {
    const state = this.sessions.get(id);
    if (!state) return [];
    this.sessions.delete(id);
    for (const chunkId of state.writes.keys()) this.writers.delete(chunkId);
    return [...state.writes.values()];
  }

  /** Ends every expired session; returns their write holds. */
  reap(now = Date.now()): { ended: number; writes: ChunkRef[] } {
    const writes: ChunkRef[] = [];
    let ended = 0;
    for (const [id, state] of this.sessions) {
      if (state.expiresAt > now) continue;
      writes.push(...this.close(id));
      ended++;
    }
    return { ended, writes };
  }

  list(now = Date.now()): SessionRecord[] {
    const records: SessionRecord[] = [];
    for (const [id, state] of this.sessions) {
      if (state.expiresAt <= now) continue;
      const held = new Set(state.writes.keys());
      for (const ids of state.reads.values()) for (const chunkId of ids) held.add(chunkId);
      records.push({
        ...state.info,
        id,
        expiresAt: state.expiresAt,
        openFiles: state.openFiles,
        heldChunks: held.size,
      });
    }
    return records.sort((a, b) => a.startedAt - b.startedAt || (a.id < b.id ? -1 : 1));
  }

  holdWrites(id: string, chunks: ChunkRef[]): void {
    const state = this.require(id);
    for (const chunk of chunks) {
      const previous = this.writers.get(chunk.id);
      if (previous !== undefined && previous !== id) this.sessions.get(previous)?.writes.delete(chunk.id);
      state.writes.set(chunk.id, structuredClone(chunk));
      this.writers.set(chunk.id, id);
    }
  }

  releaseWrites(id: string, chunkIds: string[]): void {
    const state = this.sessions.get(id);
    if (!state) return;
    for (const chunkId of chunkIds) {
      if (this.writers.get(chunkId) !== id) continue;
      state.writes.delete(chunkId);
      this.writers.delete(chunkId);
    }
  }

  holdRead(id: string, chunkIds: string[]): string {
    const state = this.require(id);
    const holdId = String(++this.holdIds);
    state.reads.set(holdId, [...chunkIds]);
    return holdId;
  }

  releaseRead(id: string, holdId: string): void {
    this.sessions.get(id)?.reads.delete(holdId);
  }

  /** A commit references these chunks: their write holds end with it. */
  committed(chunks: readonly ChunkRef[]): void {
    if (this.writers.size === 0) return;
    for (const { id: chunkId } of chunks) {
      const holder = this.writers.get(chunkId);
      if (holder === undefined) continue;
      this.sessions.get(holder)?.writes.delete(chunkId);
      this.writers.delete(chunkId);
    }
  }

  /** Chunk ids held by live sessions. */
  held(now = Date.now()): Set<string> {
    const held = new Set<string>();
    for (const state of this.sessions.values()) {
      if (state.expiresAt <= now) continue;
      for (const chunkId of state.writes.keys()) held.add(chunkId);
      for (const ids of state.reads.values()) for (const chunkId of ids) held.add(chunkId);
    }
    return held;
  }

  private live(id: string): SessionState | undefined {
    const state = this.sessions.get(id);
    return state && state.expiresAt > Date.now() ? state : undefined;
  }

  private require(id: string): SessionState {
    const state = this.live(id);
    if (!state) throw new NotFoundError(`session ${id} has expired or was closed`);
    return state;
  }
}
