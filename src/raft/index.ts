// Public surface of the consensus core.
export * from './types.js';
export { RawNode, type Status, type ProgressStatus } from './rawnode.js';
export type { RaftConfig, ProposeResult, ProposalDropReason, PlantedBugs } from './raft.js';
export {
  MemoryStorage,
  dummyHeadedEntries,
  dummyHeadedTerm,
  CompactedError,
  UnavailableError,
  SnapshotTemporarilyUnavailableError,
  type Storage,
  type InitialState,
} from './storage.js';
export { encodeConfChange, decodeConfChange } from './conf-change-codec.js';
export { InvariantViolation, assert } from './assert.js';
export { bootstrapState, type BootstrapState } from './bootstrap.js';
export { ProgressState } from './progress.js';
