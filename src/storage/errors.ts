// Typed errors of the storage layer.

/** The on-disk log is damaged (checksum, gap, truncated tail): the node must not serve from it. */
export class StorageCorruptionError extends Error {
  constructor(message: string, cause?: unknown) {
    super(`raft log is corrupt: ${message}; restore this node from its peers (wipe its data dir and rejoin)`, { cause });
    this.name = 'StorageCorruptionError';
  }
}

/** A caller broke the storage's contract (e.g. a gap in appended entries, compaction past the snapshot). */
export class StorageUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StorageUsageError';
  }
}
