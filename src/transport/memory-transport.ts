// In-process transport for tests: a shared MemoryNetwork delivers each send() batch to the
// receiver on a later macrotask (never synchronously, as on a real network).

import { MessageType, type Message, type NodeId } from '../raft/index.js';
import type { MessageHandler, SnapshotStatusHandler, Transport, UnreachableHandler } from './transport.js';

export class MemoryNetwork {
  private readonly nodes = new Map<NodeId, MemoryTransport>();

  /** A transport for `id`; its peers are every other transport on this network it addPeer()s. */
  join(id: NodeId): MemoryTransport {
    const t = new MemoryTransport(id, this);
    this.nodes.set(id, t);
    return t;
  }

  /** @internal */
  leave(id: NodeId): void {
    this.nodes.delete(id);
  }

  /** @internal */
  lookup(id: NodeId): MemoryTransport | undefined {
    return this.nodes.get(id);
  }
}

export class MemoryTransport implements Transport {
  private handler: MessageHandler = () => {};
  private unreachable: UnreachableHandler = () => {};
  private snapshotStatus: SnapshotStatusHandler = () => {};
  private readonly peers = new Set<NodeId>();
  private closed = false;

  constructor(
    readonly id: NodeId,
    private readonly network: MemoryNetwork,
  ) {}

  send(messages: Message[]): void {
    if (this.closed) return;
    const byPeer = new Map<NodeId, Message[]>();
    for (const m of messages) {
      if (!this.peers.has(m.to)) continue;
      let list = byPeer.get(m.to);
      if (!list) byPeer.set(m.to, (list = []));
      list.push(m);
    }
    for (const [to, batch] of byPeer) {
      setImmediate(() => {
        const target = this.network.lookup(to);
        const snaps = batch.filter((m) => m.type === MessageType.Snap);
        if (!target || target.closed) {
          this.unreachable(to);
          for (const _ of snaps) this.snapshotStatus(to, false);
          return;
        }
        target.deliver(batch);
        for (const _ of snaps) this.snapshotStatus(to, true);
      });
    }
  }

  private deliver(batch: Message[]): void {
    if (!this.closed) this.handler(batch);
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
  addPeer(id: NodeId, _addr: string): void {
    this.peers.add(id);
  }
  removePeer(id: NodeId): void {
    this.peers.delete(id);
  }
  async close(): Promise<void> {
    this.closed = true;
    this.network.leave(this.id);
  }
}
