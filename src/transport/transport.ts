// The seam between the node host and the network. Raft tolerates loss, duplication and
// reordering, so send() is fire-and-forget: a message that cannot be delivered is dropped
// and the peer reported unreachable, never retried by the transport.

import type { Message, NodeId } from '../raft/index.js';

export type MessageHandler = (messages: Message[]) => void;
export type UnreachableHandler = (peer: NodeId) => void;
/** Outcome of sending a SNAP message; the host passes it to RawNode.reportSnapshot. */
export type SnapshotStatusHandler = (peer: NodeId, ok: boolean) => void;

export interface Transport {
  /**
   * Queues messages for their `to` peers. SNAP messages must carry the snapshot bytes in
   * `snapshot.data`; they travel separately, in chunks. Messages to unknown peers are dropped.
   */
  send(messages: Message[]): void;
  /** Sets the single receiver of inbound messages (one call per inbound batch). */
  onMessage(handler: MessageHandler): void;
  onUnreachable(handler: UnreachableHandler): void;
  onSnapshotStatus(handler: SnapshotStatusHandler): void;
  addPeer(id: NodeId, addr: string): void;
  removePeer(id: NodeId): void;
  close(): Promise<void>;
}

/** Default bound on messages waiting for one peer; beyond it new messages are dropped. */
export const DEFAULT_MAX_QUEUED_MESSAGES = 4096;
