/** The artifact store: open one from a URI (`file:///…`, a local path, or `s3://bucket/prefix`). */
import { parseStoreUri, type ArtifactStore } from './artifact-store.js';
import { FsStore } from './fs-store.js';
import { S3Store, s3ConfigFromEnv, type S3Config } from './s3-store.js';

export * from './artifact-store.js';
export { FsStore } from './fs-store.js';
export { S3Store, s3ConfigFromEnv, makeS3Client, type S3Config } from './s3-store.js';

/** Opens the store at `uri`; S3 settings come from `s3` over the ALIGN_S3_* environment. */
export function openStore(uri: string, s3: S3Config = {}): ArtifactStore {
  const loc = parseStoreUri(uri);
  return loc.kind === 'file' ? new FsStore(loc.root) : new S3Store(loc.bucket, loc.prefix, s3ConfigFromEnv(s3));
}
