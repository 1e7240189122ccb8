export type { AllReduceOptions, ProcessGroup, ReduceOp, Rendezvous } from './process-group.js';
export { referenceReduce } from './process-group.js';
export { openShmGroup } from './shm.js';
export type { ShmOptions } from './shm.js';
export { GradBuckets, copyRange } from './grad-buckets.js';
export type { GradBucketOptions } from './grad-buckets.js';
export { ShardedAdamW, shardRanges } from './zero.js';
