// A node's configuration: identity, addresses, Raft timing and every limit, each named with
// its unit. Defaults are chosen for a loopback cluster; kvd flags override them.

import type { NodeId } from '../raft/index.js';
import type { StateMachineOptions } from '../state-machine/index.js';

export interface PeerSpec {
  id: NodeId;
  peerAddr: string;
  clientAddr: string;
}

export interface Limits {
  /** Largest key accepted, in bytes. */
  maxKeyBytes: number;
  /** Largest value accepted, in bytes. */
  maxValueBytes: number;
  /** Largest encoded client request, in bytes (also the gRPC receive limit). */
  maxRequestBytes: number;
  /** Most compare + success + failure operations in one transaction. */
  maxTxnOps: number;
  /** Most items in one KV.Batch call or one KV.Pipeline message (each item still obeys every other limit). */
  maxBatchItems: number;
  /** Most unanswered items on one KV.Pipeline stream; items beyond it are refused, not applied. */
  maxStreamItemsInFlight: number;
  /** Most proposals waiting for commit on one node; beyond it writes get RESOURCE_EXHAUSTED. */
  maxPendingProposals: number;
  /** Most reads waiting for a read index on one node. */
  maxPendingReads: number;
}

export type PeerTransportKind = 'tcp' | 'grpc';
export const PEER_TRANSPORT_KINDS: readonly PeerTransportKind[] = ['tcp', 'grpc'];

export interface NodeConfig {
  id: NodeId;
  dataDir: string;
  /** host:port for the client gRPC API. */
  clientAddr: string;
  /** host:port for the peer (Raft) protocol. */
  peerAddr: string;
  /**
   * How peers talk: 'tcp' (framed proto messages on plain sockets, the default) or 'grpc' (the
   * raftkv.raft.v1.Raft gRPC service). Every member must use the same one.
   */
  peerTransport: PeerTransportKind;
  /** The founding members (including this node); ignored once the data dir holds state. */
  initialCluster: PeerSpec[];
  /** Join an existing cluster instead of bootstrapping one (the node starts empty). */
  join: boolean;
  tickIntervalMs: number;
  electionTimeoutTicks: number;
  heartbeatIntervalTicks: number;
  leaseMarginTicks: number;
  /** Take a state-machine snapshot and compact the log every this many applied entries. */
  snapshotEveryEntries: number;
  /** Keep this many entries behind a snapshot so slightly lagging followers avoid a snapshot. */
  compactionLagEntries: number;
  maxMsgBytes: number;
  maxInflightMsgs: number;
  /** How long a request may wait for commit or a read index when the caller set no deadline. */
  defaultRequestTimeoutMs: number;
  /** SESSION reads wait this long for the local node to apply min_revision, then go through the leader. */
  sessionWaitMs: number;
  /**
   * A leader holds a follower's commit notice (an append with no entries) up to this long, so
   * the next append can carry the news instead (commit-notices.ts). Bounds how far a follower's
   * applied state may lag the commit index at low load. 0 = send at once (etcd's behaviour).
   */
  commitNoticeDelayMs: number;
  limits: Limits;
  logLevel: string;
  /**
   * Replicated-state policies (MVCC retention, exactly-once expiry). They shape the replicated
   * state, so EVERY member must use the same values. Undefined = the state machine's defaults.
   */
  stateMachine?: StateMachineOptions;
}

export const DEFAULT_LIMITS: Limits = {
  maxKeyBytes: 4 * 1024,
  maxValueBytes: 1024 * 1024,
  maxRequestBytes: 2 * 1024 * 1024,
  maxTxnOps: 128,
  maxBatchItems: 1024,
  maxStreamItemsInFlight: 4096,
  maxPendingProposals: 10_000,
  maxPendingReads: 10_000,
};

export function defaultNodeConfig(partial: Pick<NodeConfig, 'id' | 'dataDir' | 'clientAddr' | 'peerAddr' | 'initialCluster'> & Partial<NodeConfig>): NodeConfig {
  return {
    join: false,
    peerTransport: 'tcp',
    tickIntervalMs: 100,
    electionTimeoutTicks: 10,
    heartbeatIntervalTicks: 1,
    leaseMarginTicks: 2,
    snapshotEveryEntries: 10_000,
    compactionLagEntries: 1_000,
    maxMsgBytes: 1024 * 1024,
    maxInflightMsgs: 256,
    defaultRequestTimeoutMs: 5_000,
    sessionWaitMs: 1_000,
    commitNoticeDelayMs: 2,
    limits: { ...DEFAULT_LIMITS },
    logLevel: 'warn',
    ...partial,
  };
}
