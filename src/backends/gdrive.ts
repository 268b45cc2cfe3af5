import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import type { drive_v3 } from 'googleapis/build/src/apis/drive/index.js';
import { LRUCache } from 'lru-cache';
import { ConfigError, describeError, hasCode, NotFoundError, UnavailableError } from '../core/errors.js';
import { isChunkId, validateChunkId } from '../core/names.js';
import type { BackendHealth, BackendInfo, CallOptions, ChunkEntry, StorageBackend } from './backend.js';
import { createDriveAuth, loadDriveCredentials } from './gdrive-auth.js';
import { withDriveRetries } from './gdrive-errors.js';

export interface GDriveBackendOptions {
  name: string;
  /** The folder that holds the chunks; validated by the config schema (no quotes can reach a query). */
  folderId: string;
  /** A service-account key or an authorized_user refresh token (see gdrive-auth.ts). */
  credentialsFile: string;
  /** Another API root (tests, proxies); default https://www.googleapis.com/. */
  rootUrl?: string;
  /** Attempts per request for rate limits, 5xx and dropped connections (the first included). */
  maxAttempts?: number;
  /** First backoff; it doubles per attempt, with jitter. */
  retryBaseMs?: number;
  /** Names per files.list page (Drive allows up to 1,000). */
  listPageSize?: number;
}

type Drive = drive_v3.Drive;
type DriveMethodOptions = { rootUrl?: string; signal?: AbortSignal; retry: false; timeout: number };
interface DriveFile {
  id: string;
  size: number;
  createdTime: string;
}

const FOLDER_MIME = 'application/vnd.google-apps.folder';
const CHUNK_MIME = 'application/octet-stream';
const DEFAULT_MAX_ATTEMPTS = 4;
const DEFAULT_RETRY_BASE_MS = 250;
// Bounds a request nobody gave a deadline (list, info); engine calls carry their own signal.
const REQUEST_TIMEOUT_MS = 120_000;
// Chunk ids never change their file, so only memory bounds this cache (~150 bytes an entry).
const FILE_ID_CACHE_ENTRIES = 50_000;

/**
 * Chunks as files named by their id in one Drive folder. Drive finds files by
 * name only through a query, and it allows several files with one name, so:
 * a put creates a new file and then removes every other file of that name,
 * keeping the newest (the same choice every reader makes while two exist); a
 * delete removes every file of the name. The name -> file id cache spares get
 * a query; a stale entry (the file was replaced or deleted) costs one retry.
 * googleapis is loaded on first use, so configs without Drive do not pay for it.
 */
export class GDriveBackend implements StorageBackend {
  readonly name: string;
  readonly type = 'gdrive';
  readonly folderId: string;
  private readonly options: GDriveBackendOptions;
  private readonly fileIds = new LRUCache<string, string>({ max: FILE_ID_CACHE_ENTRIES });
  private drive: Promise<Drive> | undefined;
  private closed = false;

  constructor(options: GDriveBackendOptions) {
    if (!options.name) throw new ConfigError('a gdrive backend needs a name');
    if (!/^[A-Za-z0-9_-]+$/.test(options.folderId)) {
      throw new ConfigError(`gdrive backend "${options.name}": "${options.folderId}" is not a folder id`);
    }
    if (!options.credentialsFile) throw new ConfigError(`gdrive backend "${options.name}" needs a credentialsFile`);
    this.name = options.name;
    this.folderId = options.folderId;
    this.options = options;
  }

  async put(id: string, data: Uint8Array, options?: CallOptions): Promise<void> {
    validateChunkId(id);
    const signal = options?.signal;
    signal?.throwIfAborted();
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const created = await this.request(`put ${id}`, signal, (drive, o) =>
      drive.files.create(
        {
          requestBody: { name: id, parents: [this.folderId], mimeType: CHUNK_MIME },
          // A fresh stream per attempt: googleapis sends it as the media part of a multipart upload.
          media: { mimeType: CHUNK_MIME, body: Readable.from([bytes]) },
          fields: 'id,createdTime',
          supportsAllDrives: true,
        },
        o,
      ),
    ).catch((err: unknown) => {
      // Drive answers 404 for the parent: the folder is gone or was never shared with us.
      if (hasCode(err, 'NOT_FOUND')) throw new UnavailableError(this.folderMissing());
      throw err;
    });
    const mine: DriveFile = {
      id: created.data.id ?? '',
      size: bytes.length,
      createdTime: created.data.createdTime ?? '',
    };
    if (!mine.id) throw new UnavailableError(`${this.where(`put ${id}`)}: Drive returned no file id`);
    // Ours may not be listed yet; it still counts when choosing which file of the name stays.
    const named = await this.filesNamed(id, signal);
    if (!named.some((f) => f.id === mine.id)) named.push(mine);
    named.sort(newestFirst);
    const [keep, ...extra] = named as [DriveFile, ...DriveFile[]];
    for (const file of extra) await this.removeFile(file.id, signal);
    this.fileIds.set(id, keep.id);
  }

  async get(id: string, options?: CallOptions): Promise<Buffer> {
    validateChunkId(id);
    const signal = options?.signal;
    signal?.throwIfAborted();
    const cached = this.fileIds.get(id);
    if (cached !== undefined) {
      try {
        return await this.download(id, cached, signal);
      } catch (err) {
        if (!hasCode(err, 'NOT_FOUND')) throw err;
        this.fileIds.delete(id); // replaced or deleted since: look the name up again
      }
    }
    const newest = (await this.filesNamed(id, signal))[0];
    if (newest) {
      try {
        const data = await this.download(id, newest.id, signal);
        this.fileIds.set(id, newest.id);
        return data;
      } catch (err) {
        if (!hasCode(err, 'NOT_FOUND')) throw err;
      }
    }
    throw new NotFoundError(`backend "${this.name}" has no chunk ${id}`);
  }

  async delete(id: string, options?: CallOptions): Promise<void> {
    validateChunkId(id);
    const signal = options?.signal;
    signal?.throwIfAborted();
    const doomed = new Set((await this.filesNamed(id, signal)).map((f) => f.id));
    const cached = this.fileIds.get(id);
    if (cached !== undefined) doomed.add(cached); // created so recently that the query missed it
    for (const fileId of doomed) await this.removeFile(fileId, signal);
    this.fileIds.delete(id);
  }

  async stat(id: string, options?: CallOptions): Promise<number | undefined> {
    validateChunkId(id);
    const signal = options?.signal;
    signal?.throwIfAborted();
    const newest = (await this.filesNamed(id, signal))[0];
    if (!newest) return undefined;
    this.fileIds.set(id, newest.id);
    return newest.size;
  }

  async *list(options?: CallOptions): AsyncIterable<string> {
    let previous: string | undefined;
    for await (const file of this.folderFiles('files(name)', options?.signal)) {
      const name = file.name ?? '';
      if (name !== previous && isChunkId(name)) yield name;
      previous = name;
    }
  }

  async *listEntries(options?: CallOptions): AsyncIterable<ChunkEntry> {
    // The files of a duplicated name arrive together; the newest stands for them (as readers pick it),
    // which also makes the chunk as young as its youngest copy for garbage collection.
    let pending: ChunkEntry | undefined;
    for await (const file of this.folderFiles('files(name,size,modifiedTime)', options?.signal)) {
      const name = file.name ?? '';
      if (!isChunkId(name)) continue;
      const modifiedMs = Date.parse(file.modifiedTime ?? '');
      if (Number.isNaN(modifiedMs)) {
        throw new UnavailableError(`${this.where('list')}: file ${name} has no modifiedTime`);
      }
      const entry = { id: name, size: Number(file.size ?? 0), modifiedMs };
      if (pending?.id === name) {
        if (modifiedMs > pending.modifiedMs) pending = entry;
        continue;
      }
      if (pending) yield pending;
      pending = entry;
    }
    if (pending) yield pending;
  }

  /** Every live file in the folder, ordered by name, one files.list page at a time. */
  private async *folderFiles(
    fileFields: string,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<drive_v3.Schema$File> {
    signal?.throwIfAborted();
    let pageToken: string | undefined;
    do {
      const page = await this.request('list', signal, (drive, o) =>
        drive.files.list(
          {
            q: `'${this.folderId}' in parents and trashed = false`,
            // By name, so that the files of a duplicated name arrive together and are yielded once.
            orderBy: 'name',
            fields: `nextPageToken,${fileFields}`,
            pageSize: this.options.listPageSize ?? 1000,
            pageToken,
            supportsAllDrives: true,
            includeItemsFromAllDrives: true,
          },
          o,
        ),
      );
      yield* page.data.files ?? [];
      pageToken = page.data.nextPageToken ?? undefined;
    } while (pageToken);
  }

  async health(options?: CallOptions): Promise<BackendHealth> {
    const signal = options?.signal;
    signal?.throwIfAborted();
    const started = performance.now();
    try {
      // One metadata read proves the credentials, the API and the folder; it writes nothing.
      const folder = await this.request('probe', signal, (drive, o) =>
        drive.files.get({ fileId: this.folderId, fields: 'id,mimeType,trashed', supportsAllDrives: true }, o),
      );
      if (folder.data.mimeType !== FOLDER_MIME) throw new ConfigError(`${this.where('probe')}: not a folder`);
      if (folder.data.trashed) throw new ConfigError(`${this.where('probe')}: the folder is in the trash`);
      return { ok: true, latencyMs: performance.now() - started };
    } catch (err) {
      const error = hasCode(err, 'NOT_FOUND') ? this.folderMissing() : describeError(err);
      return { ok: false, latencyMs: performance.now() - started, error };
    }
  }

  async info(options?: CallOptions): Promise<BackendInfo> {
    const signal = options?.signal;
    signal?.throwIfAborted();
    const about = await this.request('info', signal, (drive, o) => drive.about.get({ fields: 'storageQuota' }, o));
    const quota = about.data.storageQuota;
    const info: BackendInfo = { name: this.name, type: this.type, location: this.location() };
    // No limit means an unlimited (organisation) quota: nothing to report.
    if (quota?.limit != null) {
      info.totalBytes = Number(quota.limit);
      info.freeBytes = Math.max(0, Number(quota.limit) - Number(quota.usage ?? 0));
    }
    return info;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.fileIds.clear();
  }

  private location(): string {
    const root = this.options.rootUrl;
    return root
      ? `drive folder ${this.folderId} at ${root}`
      : `https://drive.google.com/drive/folders/${this.folderId}`;
  }

  private folderMissing(): string {
    return `backend "${this.name}": Drive folder ${this.folderId} not found (or not shared with this account)`;
  }

  private where(action: string): string {
    return `backend "${this.name}": cannot ${action} in Drive folder ${this.folderId}`;
  }

  /** Every live file named `id` in the folder, newest first. */
  private async filesNamed(id: string, signal: AbortSignal | undefined): Promise<DriveFile[]> {
    const found = await this.request(`look up ${id}`, signal, (drive, o) =>
      drive.files.list(
        {
          q: `name = '${id}' and '${this.folderId}' in parents and trashed = false`,
          fields: 'files(id,size,createdTime)',
          pageSize: 100,
          supportsAllDrives: true,
          includeItemsFromAllDrives: true,
        },
        o,
      ),
    );
    return (found.data.files ?? [])
      .filter((f) => f.id)
      .map((f) => ({ id: f.id ?? '', size: Number(f.size ?? 0), createdTime: f.createdTime ?? '' }))
      .sort(newestFirst);
  }

  private async download(id: string, fileId: string, signal: AbortSignal | undefined): Promise<Buffer> {
    const response = await this.request(`get ${id}`, signal, (drive, o) =>
      drive.files.get({ fileId, alt: 'media', supportsAllDrives: true }, { ...o, responseType: 'arraybuffer' }),
    );
    const body = response.data as unknown;
    if (body instanceof ArrayBuffer) return Buffer.from(body);
    if (typeof body === 'string') return Buffer.from(body, 'latin1'); // an empty (204) answer
    throw new UnavailableError(`${this.where(`get ${id}`)}: unexpected response body`);
  }

  private async removeFile(fileId: string, signal: AbortSignal | undefined): Promise<void> {
    try {
      await this.request(`delete file ${fileId}`, signal, (drive, o) =>
        drive.files.delete({ fileId, supportsAllDrives: true }, o),
      );
    } catch (err) {
      if (!hasCode(err, 'NOT_FOUND')) throw err;
    }
  }

  /** One Drive request, retried per gdrive-errors.ts; gaxios' own retries are off (see there). */
  private async request<T>(
    action: string,
    signal: AbortSignal | undefined,
    run: (drive: Drive, options: DriveMethodOptions) => Promise<T>,
  ): Promise<T> {
    const drive = await this.connect();
    const methodOptions = { rootUrl: this.options.rootUrl, signal, retry: false as const, timeout: REQUEST_TIMEOUT_MS };
    return withDriveRetries(() => run(drive, methodOptions), {
      where: this.where(action),
      signal,
      attempts: this.options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
      baseMs: this.options.retryBaseMs ?? DEFAULT_RETRY_BASE_MS,
    });
  }

  private connect(): Promise<Drive> {
    if (this.closed) return Promise.reject(new UnavailableError(`backend "${this.name}" is closed`));
    this.drive ??= (async () => {
      const [module, credentials] = await Promise.all([
        import('googleapis/build/src/apis/drive/index.js'),
        loadDriveCredentials(this.options.credentialsFile),
      ]);
      return new module.drive_v3.Drive({ auth: createDriveAuth(module, credentials) });
    })().catch((err: unknown) => {
      // Not cached: a credentials file fixed after the error is read on the next call.
      this.drive = undefined;
      throw err;
    });
    return this.drive;
  }
}

/** Newest first; the file id breaks ties, so every reader picks the same file. */
function newestFirst(a: DriveFile, b: DriveFile): number {
  if (a.createdTime !== b.createdTime) return a.createdTime < b.createdTime ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}
