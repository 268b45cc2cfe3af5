import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout this file runs from: dist/cli/version.js (or src/cli/version.ts) is two levels down. */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * The commit HEAD points at, read from .git without running git (which may
 * not be installed): HEAD, then the ref in the git dir, the common dir (a
 * worktree's refs live in the main checkout's) or packed-refs.
 */
export function gitCommit(root: string = ROOT): string | undefined {
  let gitDir = join(root, '.git');
  const pointer = read(gitDir);
  // A worktree or submodule: .git is a file "gitdir: PATH".
  if (pointer?.startsWith('gitdir: ')) {
    const target = pointer.slice('gitdir: '.length);
    gitDir = isAbsolute(target) ? target : join(root, target);
  }
  const head = read(join(gitDir, 'HEAD'));
  if (head === undefined) return undefined;
  if (/^[0-9a-f]{40}$/.test(head)) return head;
  const ref = /^ref: (.+)$/.exec(head)?.[1];
  if (!ref) return undefined;
  const common = read(join(gitDir, 'commondir'));
  const commonDir = common === undefined ? gitDir : isAbsolute(common) ? common : join(gitDir, common);
  for (const dir of [gitDir, commonDir]) {
    const id = read(join(dir, ref));
    if (id && /^[0-9a-f]{40}$/.test(id)) return id;
  }
  const packed = read(join(commonDir, 'packed-refs')) ?? '';
  for (const line of packed.split('\n')) {
    const [id, name] = line.split(' ');
    if (name === ref && id && /^[0-9a-f]{40}$/.test(id)) return id;
  }
  return undefined;
}

/**
 * "0.1.0 (commit 0e61e8d)": the package version and the commit. In a git
 * checkout the commit is read at run time, so a rebuild is not needed after a
 * commit; elsewhere (a Docker image, a copied tree) it is the one
 * scripts/build-info baked into dist/build-info.json at build time.
 */
export function versionString(root: string = ROOT): string {
  const pkg = JSON.parse(read(join(root, 'package.json')) ?? '{}') as { version?: string };
  let commit = gitCommit(root);
  if (!commit) {
    const baked = JSON.parse(read(join(root, 'dist', 'build-info.json')) ?? '{}') as { commit?: string };
    commit = baked.commit;
  }
  return `${pkg.version ?? 'unknown'} (commit ${commit ? commit.slice(0, 12) : 'unknown'})`;
}
