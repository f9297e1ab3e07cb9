// Wire-independent types of the consensus core. Everything here is plain data so the
// host can encode it however it likes (protobuf on the wire, JSON in tests).

export type NodeId = number;

/** No node: used for "no vote", "no leader". Real ids start at 1. */
export const NONE: NodeId = 0;

export enum EntryType {
  Normal = 0,
  /** A single-member configuration change; `data` is an encoded ConfChange. */
  ConfChange = 1,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** Opaque command bytes. An empty Normal entry is the leader's no-op of its term. */
  data: Uint8Array;
}

export interface HardState {
  term: number;
  /** Who this node voted for in `term`; NONE if nobody. */
  vote: NodeId;
  commit: number;
}

export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

export interface Snapshot {
  metadata: SnapshotMetadata;
  /** The application's state at `metadata.index`, opaque to the core. */
  data: Uint8Array;
}

export enum ConfChangeType {
  AddNode = 0,
  RemoveNode = 1,
  AddLearner = 2,
}

export interface ConfChange {
  type: ConfChangeType;
  nodeId: NodeId;
  /** Opaque to the core: the host puts the peer's address here. */
  context: Uint8Array;
}

export enum MessageType {
  // Local messages: never sent over the wire.
  Hup = 0, // start an election (or pre-election)
  Beat = 1, // leader: send heartbeats now
  Prop = 2, // proposal
  // Wire messages.
  App = 3,
  AppResp = 4,
  Vote = 5,
  VoteResp = 6,
  PreVote = 7,
  PreVoteResp = 8,
  Snap = 9,
  Heartbeat = 10,
  HeartbeatResp = 11,
  TransferLeader = 12,
  TimeoutNow = 13,
  ReadIndex = 14,
  ReadIndexResp = 15,
  /** Local: the host reports a snapshot send failed/succeeded (`reject`). */
  SnapStatus = 16,
  /** Local: the host reports a peer is unreachable. */
  Unreachable = 17,
}

export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  term: number;
  /** App: term of the entry preceding `entries`. Vote: candidate's last log term. */
  logTerm: number;
  /** App: index preceding `entries`. AppResp: last matched index (or rejected index). Vote: last index. */
  index: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  /** AppResp reject: the follower's hint for fast backtracking (its last index with term <= logTerm). */
  rejectHint: number;
  snapshot?: Snapshot;
  /** ReadIndex / Heartbeat context: identifies a read request. Vote: CAMPAIGN_TRANSFER when forced. */
  context: Uint8Array;
  /**
   * Heartbeat: the leader's tick count when it was sent; HeartbeatResp echoes it back. The leader
   * derives its read lease from the newest send tick a quorum has acknowledged.
   */
  sentTick: number;
}

export enum StateRole {
  Follower = 'Follower',
  PreCandidate = 'PreCandidate',
  Candidate = 'Candidate',
  Leader = 'Leader',
}

/** A read request that is now safe to serve once `applied >= index`. */
export interface ReadState {
  index: number;
  requestCtx: Uint8Array;
}

export interface SoftState {
  leader: NodeId;
  role: StateRole;
}

/**
 * Everything the host must do, in this order:
 * 1. Persist `hardState`, `entries` and `snapshot` (if any) to stable storage; fsync when `mustSync`.
 * 2. Send `messages` (a leader's AppendEntries may be sent before step 1 completes, but any message
 *    from a follower or candidate, including vote responses, must wait until step 1 is durable;
 *    this core only puts such messages here when the Ready's persistence is part of it, so the simple
 *    rule "persist then send" is always safe).
 * 3. Apply the snapshot, then `committedEntries`, to the state machine.
 * 4. Serve each `readStates` entry once the applied index reaches its index.
 * 5. Call `advance(ready)`.
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  /** Entries to append to stable storage (may overwrite a suffix of the existing log). */
  entries: Entry[];
  snapshot?: Snapshot;
  committedEntries: Entry[];
  messages: Message[];
  readStates: ReadState[];
  /** True when hardState or entries changed in a way that must be fsynced before messages are sent. */
  mustSync: boolean;
}

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
}

/** A seeded random source, passed in so the core stays deterministic. Returns an integer in [0, n). */
export type RandomIntFn = (n: number) => number;

export function emptyMessage(partial: Partial<Message> & Pick<Message, 'type'>): Message {
  return {
    from: NONE,
    to: NONE,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: EMPTY_BYTES,
    sentTick: 0,
    ...partial,
  };
}

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

/** Vote context marking an election forced by a leadership transfer: it overrides leases. */
export const CAMPAIGN_TRANSFER: Uint8Array = new TextEncoder().encode('CampaignTransfer');

export function isLocalMessage(type: MessageType): boolean {
  return (
    type === MessageType.Hup ||
    type === MessageType.Beat ||
    type === MessageType.SnapStatus ||
    type === MessageType.Unreachable
  );
}

export function isResponseMessage(type: MessageType): boolean {
  return (
    type === MessageType.AppResp ||
    type === MessageType.VoteResp ||
    type === MessageType.PreVoteResp ||
    type === MessageType.HeartbeatResp ||
    type === MessageType.ReadIndexResp ||
    type === MessageType.Unreachable
  );
}
