export { openNodeDb, DataDirLockedError, PREFIX_RAFT, PREFIX_STATE_MACHINE, type NodeDb, type BatchOp, type OpenNodeDbOptions } from './node-db.js';
export { LevelRaftStorage, type PersistRequest } from './level-raft-storage.js';
export { StorageCorruptionError, StorageUsageError } from './errors.js';
export { CorruptRecordError } from './codec-bytes.js';
