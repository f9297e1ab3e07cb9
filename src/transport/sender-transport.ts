// What the TCP and gRPC transports share: one outbound sender per peer, fed a whole send() at
// once (each writes what it got as one batch), and the node's three callbacks.

import type { Logger } from 'pino';
import type { Message, NodeId } from '../raft/index.js';
import type { MessageHandler, SnapshotStatusHandler, Transport, UnreachableHandler } from './transport.js';

/** Options both peer transports take. */
export interface PeerTransportOptions {
  id: NodeId;
  /** host:port to listen on; port 0 picks a free one (see `port`). */
  listenAddr: string;
  /** Per-peer outbound queue bound; when full, new messages are dropped and the peer reported unreachable. */
  maxQueuedMessages?: number;
  maxBatchMessages?: number;
  snapshotChunkBytes?: number;
  /** Largest snapshot accepted from a peer. */
  maxSnapshotBytes?: number;
  snapshotDeadlineMs?: number;
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
  logger?: Logger;
}

export const PEER_TRANSPORT_DEFAULTS = {
  maxBatchMessages: 1024,
  snapshotChunkBytes: 1024 * 1024,
  maxSnapshotBytes: 1024 * 1024 * 1024,
  snapshotDeadlineMs: 5 * 60_000,
  reconnectInitialMs: 50,
  reconnectMaxMs: 2_000,
};

/** The outbound half for one peer. */
export interface OutboundPeer {
  enqueue(m: Message): void;
  /** Writes everything enqueued since the last kick. */
  kick(): void;
  close(): void;
  /** Messages dropped because the queue was full. */
  readonly droppedMessages: number;
}

export abstract class SenderTransport<S extends OutboundPeer> implements Transport {
  protected handler: MessageHandler = () => {};
  protected unreachable: UnreachableHandler = () => {};
  protected snapshotStatus: SnapshotStatusHandler = () => {};
  private readonly peers = new Map<NodeId, S>();

  protected constructor(private readonly selfId: NodeId) {}

  /** A sender to `id` at `addr`, reporting through this transport's callbacks. */
  protected abstract newSender(id: NodeId, addr: string): S;

  abstract close(): Promise<void>;

  send(messages: Message[]): void {
    const touched = new Set<S>();
    for (const m of messages) {
      const p = this.peers.get(m.to);
      if (!p) continue;
      p.enqueue(m);
      touched.add(p);
    }
    for (const p of touched) p.kick();
  }

  onMessage(handler: MessageHandler): void {
    this.handler = handler;
  }
  onUnreachable(handler: UnreachableHandler): void {
    this.unreachable = handler;
  }
  onSnapshotStatus(handler: SnapshotStatusHandler): void {
    this.snapshotStatus = handler;
  }

  addPeer(id: NodeId, addr: string): void {
    if (id === this.selfId) return;
    this.peers.get(id)?.close();
    this.peers.set(id, this.newSender(id, addr));
  }

  removePeer(id: NodeId): void {
    this.peers.get(id)?.close();
    this.peers.delete(id);
  }

  /** Messages dropped for `peer` because its queue was full. */
  droppedMessages(peer: NodeId): number {
    return this.peers.get(peer)?.droppedMessages ?? 0;
  }

  protected closeSenders(): void {
    for (const p of this.peers.values()) p.close();
    this.peers.clear();
  }
}
