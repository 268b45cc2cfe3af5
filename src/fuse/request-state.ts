/** One request in flight: the caller's identity from the header, and whether the kernel interrupted it. */
import type { RequestContext } from './filesystem.js';

export class RequestState implements RequestContext {
  interrupted = false;
  constructor(
    readonly unique: number,
    readonly opcode: number,
    readonly uid: number,
    readonly gid: number,
    readonly pid: number,
  ) {}
}
