export type { ProcessGroup, ReduceOp, Rendezvous } from './process-group.js';
export { referenceReduce } from './process-group.js';
export { openShmGroup } from './shm.js';
export type { ShmOptions } from './shm.js';
