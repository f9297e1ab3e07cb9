// Pending ReadIndex requests on the leader (etcd-io/raft read_only.go, "safe" mode): a request
// records the commit index when it arrived and becomes servable once a quorum has answered a
// heartbeat that carried its context, proving no newer leader existed at that moment.

import type { Message, NodeId } from './types.js';

export interface ReadIndexStatus {
  /** The original request (from the local host or a follower). */
  req: Message;
  index: number;
  acks: Set<NodeId>;
}

export function ctxKey(ctx: Uint8Array): string {
  // Contexts are small opaque ids; a string key lets us use a Map.
  let s = '';
  for (let i = 0; i < ctx.length; i++) s += String.fromCharCode(ctx[i]!);
  return s;
}

export class ReadOnly {
  private readonly pending = new Map<string, ReadIndexStatus>();
  /** Keys in arrival order: acknowledging one request acknowledges all before it. */
  private queue: string[] = [];

  get size(): number {
    return this.queue.length;
  }

  addRequest(index: number, req: Message): void {
    const key = ctxKey(req.entries[0]!.data);
    if (this.pending.has(key)) return;
    this.pending.set(key, { req, index, acks: new Set() });
    this.queue.push(key);
  }

  /** Records an ack for ctx and returns the set of acks, or undefined if unknown. */
  recvAck(id: NodeId, ctx: Uint8Array): Set<NodeId> | undefined {
    const rs = this.pending.get(ctxKey(ctx));
    if (!rs) return undefined;
    rs.acks.add(id);
    return rs.acks;
  }

  /** Removes and returns every request up to and including ctx. */
  advance(ctx: Uint8Array): ReadIndexStatus[] {
    const key = ctxKey(ctx);
    const pos = this.queue.indexOf(key);
    if (pos < 0) return [];
    const done = this.queue.slice(0, pos + 1).map((k) => this.pending.get(k)!);
    for (const k of this.queue.slice(0, pos + 1)) this.pending.delete(k);
    this.queue = this.queue.slice(pos + 1);
    return done;
  }

  /** The context of the newest pending request, carried by the next heartbeat round. */
  lastPendingRequestCtx(): Uint8Array | undefined {
    if (this.queue.length === 0) return undefined;
    return this.pending.get(this.queue[this.queue.length - 1]!)!.req.entries[0]!.data;
  }

  clear(): void {
    this.pending.clear();
    this.queue = [];
  }
}
