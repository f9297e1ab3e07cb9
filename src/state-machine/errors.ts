// Typed errors of the state machine.

/** A snapshot blob is damaged or of an unknown format; nothing was changed. */
export class SnapshotFormatError extends Error {
  constructor(message: string) {
    super(`invalid state machine snapshot: ${message}`);
    this.name = 'SnapshotFormatError';
  }
}

/** The state is larger than a single-buffer snapshot may be (see MAX_SNAPSHOT_BYTES). */
export class SnapshotTooLargeError extends Error {
  constructor(readonly sizeBytes: number, readonly maxBytes: number) {
    super(`state machine snapshot would be ${sizeBytes} bytes, above the ${maxBytes}-byte limit`);
    this.name = 'SnapshotTooLargeError';
  }
}

/** applyEntries/restore called while another one is in flight (the Ready loop serializes them). */
export class ConcurrentApplyError extends Error {
  constructor(op: string) {
    super(`${op} called while another apply or restore is in flight`);
    this.name = 'ConcurrentApplyError';
  }
}

/** A read at a revision that compaction has removed (revision < compactRevision). */
export class CompactedError extends Error {
  constructor(
    readonly revision: number,
    readonly compactRevision: number,
  ) {
    super(`revision ${revision} has been compacted; the oldest readable revision is ${compactRevision}`);
    this.name = 'CompactedError';
  }
}

/** A read at a revision the state machine has not reached yet. */
export class FutureRevisionError extends Error {
  constructor(
    readonly revision: number,
    readonly currentRevision: number,
  ) {
    super(`revision ${revision} is in the future; the current revision is ${currentRevision}`);
    this.name = 'FutureRevisionError';
  }
}
