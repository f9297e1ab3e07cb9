// The checker's common history representation. Every input format (Jepsen EDN, Elle-cli JSON,
// Porcupine logs, our JSON-lines) is parsed into this shape; every checker reads only this.

export type OpType = 'invoke' | 'ok' | 'fail' | 'info';

/**
 * One history event. Values are normalized: EDN keywords become strings without the colon
 * (`:read` -> 'read'), `nil` becomes null, vectors and lists become arrays, maps become
 * plain objects with keyword keys stripped of the colon.
 * A transaction value is an array of micro-ops: ['append', k, v], ['r', k, null | v | [...]], ['w', k, v].
 */
export interface Op {
  /** Position in the history (0-based, in file order) unless the file gives its own :index. */
  index: number;
  /** A client process id, or a string such as 'nemesis'. */
  process: number | string;
  type: OpType;
  /** Operation name: 'read', 'write', 'cas', 'txn', 'append', 'get', 'put', 'acquire', 'release', 'add', ... */
  f: string;
  value: unknown;
  /** Key for per-key formats (porcupine kv, our jsonl); absent for single-register histories. */
  key?: string;
  /** Wall or monotonic time in nanoseconds, when the file has it. */
  time?: number;
  error?: unknown;
  /**
   * Our jsonl only: on `ok`, the revision a write produced or the revision of the state a read
   * reflects (the server's revision token). Used by the session-guarantees checker.
   */
  revision?: number;
  /** Our jsonl only: the client session the op belongs to (defaults to its process). */
  session?: string;
}

export type History = Op[];

/** A parse failure with a position a person can find in the file. */
export class HistoryParseError extends Error {
  constructor(
    message: string,
    readonly file: string | undefined,
    readonly line: number,
    readonly column: number,
  ) {
    super(`${file ?? '<input>'}:${line}:${column}: ${message}`);
    this.name = 'HistoryParseError';
  }
}
