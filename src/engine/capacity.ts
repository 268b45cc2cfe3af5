import type { BackendInfo } from '../backends/backend.js';

/** Space for users' bytes, as `df` on the mount reports it. */
export interface Capacity {
  totalBytes: number;
  freeBytes: number;
}

/**
 * What users can store, from what the backends report: each underlying
 * device counted once (the embedded default's three local backends share one
 * filesystem, and adding it up three times told `df` three times the truth),
 * then divided by N, since every byte is stored N times. So writing 1 GiB
 * moves the free space by about 1 GiB. Backends that could not answer, or
 * cannot tell their capacity, count nothing.
 *
 * With replicas sharing a device unevenly the divided sum is an estimate (the
 * exact figure depends on placement); it never counts a byte twice.
 */
export function usableCapacity(infos: ReadonlyArray<BackendInfo | undefined>, n: number): Capacity {
  const shared = new Map<string, Capacity>();
  let totalBytes = 0;
  let freeBytes = 0;
  for (const info of infos) {
    if (info?.totalBytes === undefined || info.freeBytes === undefined) continue;
    if (info.device === undefined) {
      totalBytes += info.totalBytes;
      freeBytes += info.freeBytes;
    } else {
      // Readings of one device taken moments apart differ a little: any one of them will do.
      shared.set(info.device, { totalBytes: info.totalBytes, freeBytes: info.freeBytes });
    }
  }
  for (const capacity of shared.values()) {
    totalBytes += capacity.totalBytes;
    freeBytes += capacity.freeBytes;
  }
  return { totalBytes: Math.floor(totalBytes / n), freeBytes: Math.floor(freeBytes / n) };
}
