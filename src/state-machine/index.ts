export {
  KvStateMachine,
  DEFAULT_RETAIN_REVISIONS,
  DEFAULT_COMPACT_EVERY_REVISIONS,
  type ApplyResult,
  type ApplyOptions,
  type StateSnapshot,
  type PreparedRestore,
  type PreparedApply,
  type StateMachineOptions,
} from './kv-state-machine.js';
export { DEFAULT_DEDUP_POLICY, MAX_CLIENT_ID_BYTES, type DedupPolicy, type RejectReason } from './dedup.js';
export { MAX_RANGE_RESULTS, InvalidCommandError, validateCommand, type CommandResponse } from './execute.js';
export { MAX_SNAPSHOT_BYTES } from './snapshot-codec.js';
export { SnapshotFormatError, SnapshotTooLargeError, ConcurrentApplyError, CompactedError, FutureRevisionError } from './errors.js';
export { readChanges, type ChangeEvent } from './history-reader.js';
