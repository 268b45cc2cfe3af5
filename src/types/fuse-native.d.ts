/** The part of fuse-native 2.x that Lilio uses (the package ships no types). */
declare module 'fuse-native' {
  interface FuseOptions {
    force?: boolean;
    mkdir?: boolean;
    timeout?: number | false;
    debug?: boolean;
    allowOther?: boolean;
    autoCache?: boolean;
    kernelCache?: boolean;
    attrTimeout?: number;
    entryTimeout?: number;
    fsname?: string;
    subtype?: string;
    maxRead?: number;
    defaultPermissions?: boolean;
  }

  class Fuse {
    constructor(mountpoint: string, ops: object, options?: FuseOptions);
    readonly mnt: string;
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    protected _fuseOptions(): string;
    /** Internal dispatchers, one per operation: `signal` answers the kernel with (errno, ...result). */
    protected _op_getattr(signal: (...args: unknown[]) => void, path: string): void;
    protected _op_fgetattr(signal: (...args: unknown[]) => void, path: string, fd: number): void;
    static unmount(mountpoint: string, cb: (err: Error | null) => void): void;
  }

  export = Fuse;
}
