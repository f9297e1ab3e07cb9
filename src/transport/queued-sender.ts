// What the TCP and gRPC senders share: the outbound half for one peer is a bounded queue of
// messages (SNAP messages go straight to their own transfer), a reconnect backoff, and a closed flag.

import type { Logger } from 'pino';
import { MessageType, type Message, type NodeId } from '../raft/index.js';
import { ReconnectBackoff } from './reconnect-backoff.js';
import type { OutboundPeer } from './sender-transport.js';

export interface PeerSenderOptions {
  selfId: NodeId;
  peerId: NodeId;
  addr: string;
  maxQueuedMessages: number;
  /** Bound on messages in one batch, so one write stays a reasonable size. */
  maxBatchMessages: number;
  snapshotChunkBytes: number;
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  /** A snapshot transfer that takes longer than this fails (and is reported as failed). */
  snapshotDeadlineMs: number;
  onUnreachable: (peer: NodeId) => void;
  onSnapshotStatus: (peer: NodeId, ok: boolean) => void;
  logger: Logger;
}

export abstract class QueuedSender<O extends PeerSenderOptions = PeerSenderOptions> implements OutboundPeer {
  protected queue: Message[] = [];
  protected closed = false;
  protected readonly backoff: ReconnectBackoff;
  /** Messages dropped because the queue was full (for status/metrics). */
  droppedMessages = 0;

  constructor(protected readonly o: O) {
    this.backoff = new ReconnectBackoff(o.reconnectInitialMs, o.reconnectMaxMs);
  }

  enqueue(m: Message): void {
    if (this.closed) return;
    if (m.type === MessageType.Snap) return this.sendSnapshot(m);
    if (this.queue.length >= this.o.maxQueuedMessages) {
      this.droppedMessages++;
      this.o.onUnreachable(this.o.peerId);
      return;
    }
    this.queue.push(m);
  }

  abstract kick(): void;
  abstract close(): void;
  /** Sends a SNAP message (its data in snapshot.data) on a transfer of its own. */
  protected abstract sendSnapshot(m: Message): void;
}
