// Public types of the Elle-style transactional checker (list-append and rw-register).

/** Which workload the history comes from; decides how version orders are inferred. */
export type ElleModel = 'list-append' | 'rw-register';

export interface ElleOptions {
  model: ElleModel;
  /** Consistency models the history is expected to satisfy (Elle names). Default ['strict-serializable']. */
  consistencyModels?: string[];
  /** Wall-clock budget for the whole cycle search; a search cut short yields 'cycle-search-timeout'. */
  timeoutMs?: number;
  /** rw-register only: assume each key is linearizable and infer versions from real-time order (Elle :linearizable-keys?). */
  linearizableKeys?: boolean;
  /** rw-register only: assume each key is sequentially consistent; infer versions from process order (Elle :sequential-keys?). */
  sequentialKeys?: boolean;
  /** rw-register only: assume writes follow reads inside a txn (Elle :wfr-keys?). */
  wfrKeys?: boolean;
}

/** One edge of a reported cycle, explained in words. */
export interface ElleCycleStep {
  /** History :index of the transaction the edge leaves. */
  fromIndex: number;
  /** History :index of the transaction the edge enters. */
  toIndex: number;
  rel: RelName;
  text: string;
}

export interface ElleCycle {
  /** Anomaly type, e.g. 'G-single-item-realtime'. */
  type: string;
  /** History :index of each transaction on the cycle, in order (the first is not repeated). */
  txnIndices: number[];
  steps: ElleCycleStep[];
}

export interface ElleResult {
  valid: boolean | 'unknown';
  /** Reportable anomaly types found (sorted), as Elle's :anomaly-types. */
  anomalyTypes: string[];
  /** The weakest consistency models the anomalies rule out (Elle's :not). */
  not: string[];
  /** Every other (stronger) model ruled out (Elle's :also-not). */
  alsoNot: string[];
  /** One human-readable paragraph per reported anomaly instance (capped). */
  explanations: string[];
  /** Number of ops in the input history. */
  opCount: number;
  /** Concrete dependency cycles found, one per (SCC, type). */
  cycles?: ElleCycle[];
}

export type RelName = 'ww' | 'wr' | 'rw' | 'process' | 'realtime';
