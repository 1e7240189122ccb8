/**
 * `tsx infra/deploy/ensure-bucket.ts`: creates the bucket of ALIGN_STORE_URI (an s3:// store),
 * waiting up to 60 s for the S3 endpoint to answer. The one-shot `bucket` service of compose.yaml;
 * production buckets exist already and this is not needed there.
 */
import { openStore } from '../../store/index.js';
import { S3Store } from '../../store/s3-store.js';

const uri = process.env.ALIGN_STORE_URI ?? '';
const store = openStore(uri);
if (!(store instanceof S3Store)) {
  console.error(`ensure-bucket: ALIGN_STORE_URI must be an s3:// store, got '${uri}'`);
  process.exit(2);
}
const until = Date.now() + 60_000;
for (;;) {
  try {
    await store.ensureBucket();
    console.log(`ensure-bucket: ${uri} is ready`);
    break;
  } catch (e) {
    if (Date.now() > until) {
      console.error(`ensure-bucket: ${(e as Error).message}`);
      process.exit(3);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
