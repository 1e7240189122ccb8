/**
 * Where configs given through the API may point: every model, data, module and output path must
 * lie under one of the allowed roots (ALIGN_ALLOWED_ROOTS: local folders and s3://bucket/prefix
 * URIs, comma-separated; by default the server's working folder and the run store). A local path
 * is compared by its real path, so `..` and a symlink out of a root are refused; a store URI by
 * its bucket and key prefix. The CLI is not limited: a person at a shell already reads what the
 * shell can.
 */
import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../algorithms/errors.js';
import { isUri } from './config-paths.js';

/** Config keys whose string values are files or folders (at any depth: data.train, kd.teacher, reward.function, …). */
export const PATH_KEYS: ReadonlySet<string> = new Set([
  'model', 'train', 'validation', 'function', 'teacher', 'referenceModel', 'prompts', 'data', 'constitution', 'fewShot', 'helpful',
  'redTeam', 'attributeModel', 'sftModel', 'judgeModel',
]);

/** The real path of `p`, resolving symlinks in the part that exists (the rest may be created later). */
function realPathOf(p: string): string {
  const abs = path.resolve(p);
  let head = abs;
  const tail: string[] = [];
  while (!existsSync(head)) {
    const up = path.dirname(head);
    if (up === head) break;
    tail.unshift(path.basename(head));
    head = up;
  }
  return path.join(existsSync(head) ? realpathSync(head) : head, ...tail);
}

export class AllowedRoots {
  private readonly local: string[];
  private readonly remote: string[];

  constructor(readonly roots: readonly string[]) {
    if (roots.length === 0) throw new ConfigError('ALLOWED_ROOTS: give at least one folder or s3:// prefix');
    this.local = roots.filter((r) => !isUri(r) || r.startsWith('file://')).map((r) => realPathOf(r.startsWith('file://') ? fileURLToPath(r) : r));
    this.remote = roots.filter((r) => isUri(r) && !r.startsWith('file://')).map((r) => (r.endsWith('/') ? r : `${r}/`));
  }

  /** ALIGN_ALLOWED_ROOTS, else the working folder and the run store. */
  static fromEnv(storeUri: string, env = process.env.ALIGN_ALLOWED_ROOTS): AllowedRoots {
    const listed = (env ?? '').split(',').map((r) => r.trim()).filter(Boolean);
    return new AllowedRoots(listed.length ? listed : [process.cwd(), storeUri]);
  }

  /** Refuses `value` (of config field `field`) unless it lies under a root. */
  check(field: string, value: string): void {
    if (isUri(value) && !value.startsWith('file://')) {
      // A store URI: normalised segments only, so that s3://ok/../other cannot pass as a prefix.
      if (!value.split('/').some((s) => s === '..' || s === '.') && this.remote.some((r) => value.startsWith(r) || `${value}/` === r)) return;
    } else {
      const real = realPathOf(value.startsWith('file://') ? fileURLToPath(value) : value);
      if (this.local.some((r) => real === r || real.startsWith(`${r}${path.sep}`))) return;
    }
    throw new ConfigError(`${field}: ${value} is outside the folders and stores this server may read and write (ALIGN_ALLOWED_ROOTS: ${this.roots.join(', ')})`);
  }

  /** check() as a function to hand to the config resolvers (PathGuard). */
  readonly guard = (field: string, value: string): void => this.check(field, value);

  /** Checks every path value of a config (PATH_KEYS at any depth); `#export` suffixes of modules are ignored. */
  checkConfig(config: unknown, where = ''): void {
    if (Array.isArray(config)) return config.forEach((v, i) => this.checkConfig(v, `${where}[${i}]`));
    if (typeof config !== 'object' || config === null) return;
    for (const [k, v] of Object.entries(config as Record<string, unknown>)) {
      const field = where ? `${where}.${k}` : k;
      if (typeof v === 'string' && PATH_KEYS.has(k)) this.check(field, k === 'function' && v.lastIndexOf('#') > 0 ? v.slice(0, v.lastIndexOf('#')) : v);
      else this.checkConfig(v, field);
    }
  }
}
