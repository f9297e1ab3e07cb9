export { KvStateMachine, type ApplyResult, type ApplyOptions, type StateSnapshot, type PreparedRestore } from './kv-state-machine.js';
export { MAX_RANGE_RESULTS, InvalidCommandError, validateCommand, type CommandResponse } from './execute.js';
export { MAX_SNAPSHOT_BYTES } from './snapshot-codec.js';
export { SnapshotFormatError, SnapshotTooLargeError, ConcurrentApplyError } from './errors.js';
