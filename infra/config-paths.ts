/**
 * A config's file and folder values, made absolute against the config's folder (workers do not
 * share the caller's working directory) and checked to exist, so that a typo in a path is
 * reported before anything starts. Store URIs (s3://…) pass through, checked by whoever loads
 * them; file:// URIs are checked and kept as written.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../algorithms/errors.js';

/** A URI of any scheme (file://, s3://, …), not a plain path. */
export const isUri = (p: string): boolean => /^[a-z][a-z0-9+.-]*:\/\//i.test(p);

/** A path on this machine (not a URI of any scheme). */
export const isLocalPath = (p: string): boolean => !isUri(p);

/** Refuses a path outside the folders a server may read (AllowedRoots.check). */
export type PathGuard = (field: string, value: string) => void;

/**
 * One path value of `field`. With `exportSuffix`, a module path may name its export after '#'
 * (reward.function: rewards.ts#exact), which is kept. A `guard` is asked before the path is looked
 * at, so that a server never says whether a file outside its roots exists.
 */
export function resolveConfigPath(field: string, spec: string, baseDir: string, exportSuffix = false, guard?: PathGuard): string {
  const hash = exportSuffix ? spec.lastIndexOf('#') : -1;
  const [p, suffix] = hash > 0 ? [spec.slice(0, hash), spec.slice(hash)] : [spec, ''];
  if (isUri(p) && !p.startsWith('file://')) {
    guard?.(field, p);
    return spec;
  }
  const abs = p.startsWith('file://') ? fileURLToPath(p) : path.resolve(baseDir, p);
  guard?.(field, abs);
  if (!existsSync(abs)) throw new ConfigError(`${field}: no such file or folder: ${abs}`);
  return (p.startsWith('file://') ? p : abs) + suffix;
}
