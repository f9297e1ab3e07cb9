// TCP implementation of Transport, the default peer transport: the proto/raft/v1 messages in
// length-prefixed frames (tcp-framing.ts) on plain sockets, one long-lived connection per
// direction per peer, as etcd's own peer streams are framed messages on plain connections.
//
// Why not the gRPC transport (grpc-transport.ts, still built and tested): a Raft message hop
// is on every write's critical path twice (append out, ack back). Measured here between two
// Node processes with 1 ms between pings, a grpc-js stream message round trip took ~300 us and
// a framed TCP one ~140 us (`.scratch`-style ping-pong, 2-core VM); grpc-js also spends more
// CPU per message, which on a small machine shared by several nodes is latency too.

import net from 'node:net';
import { pino, type Logger } from 'pino';
import type { Message, NodeId } from '../raft/index.js';
import { decodeBatch, decodeChunk, encodeAck, type SnapshotAck } from './codec.js';
import { FrameKind, FrameReader, frameBytes } from './tcp-framing.js';
import { parseHostPort, TcpPeerSender } from './tcp-peer-sender.js';
import { DEFAULT_MAX_QUEUED_MESSAGES, type MessageHandler, type SnapshotStatusHandler, type Transport, type UnreachableHandler } from './transport.js';

export interface TcpTransportOptions {
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
  /** An outbound connection that takes no bytes for this long is dropped and reopened. */
  stalledWriteMs?: number;
  /** Upper bound on one inbound frame (a batch or a snapshot chunk); a larger one closes the connection. */
  maxFrameBytes?: number;
  logger?: Logger;
}

const DEFAULTS = {
  maxBatchMessages: 1024,
  snapshotChunkBytes: 1024 * 1024,
  maxSnapshotBytes: 1024 * 1024 * 1024,
  snapshotDeadlineMs: 5 * 60_000,
  reconnectInitialMs: 50,
  reconnectMaxMs: 2_000,
  stalledWriteMs: 10_000,
  maxFrameBytes: 64 * 1024 * 1024,
};

/** Reassembly of one inbound snapshot (its connection carries nothing else). */
interface InboundSnapshot {
  header: Message;
  buf: Uint8Array;
  received: number;
}

export class TcpTransport implements Transport {
  private handler: MessageHandler = () => {};
  private unreachable: UnreachableHandler = () => {};
  private snapshotStatus: SnapshotStatusHandler = () => {};
  private readonly peers = new Map<NodeId, TcpPeerSender>();
  private readonly inbound = new Set<net.Socket>();
  private readonly logger: Logger;
  /** The port actually bound (useful with port 0). */
  port = 0;

  private constructor(
    private readonly o: TcpTransportOptions,
    private readonly server: net.Server,
  ) {
    this.logger = o.logger ?? pino({ level: 'silent' });
  }

  static async start(o: TcpTransportOptions): Promise<TcpTransport> {
    const { host, port } = parseHostPort(o.listenAddr);
    const server = net.createServer({ noDelay: true });
    const t = new TcpTransport(o, server);
    server.on('connection', (s) => t.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new Error(err.code === 'EADDRINUSE' ? `peer address ${o.listenAddr} is already in use by another process (EADDRINUSE)` : `cannot listen on peer address ${o.listenAddr}: ${err.message}`, { cause: err })),
      );
      server.listen(port, host, () => resolve());
    });
    t.port = (server.address() as net.AddressInfo).port;
    return t;
  }

  private accept(socket: net.Socket): void {
    this.inbound.add(socket);
    socket.setNoDelay(true);
    let snapshot: InboundSnapshot | undefined;
    let failed = false;
    const maxFrameBytes = this.o.maxFrameBytes ?? DEFAULTS.maxFrameBytes;
    const refuseSnapshot = (error: string): void => {
      failed = true;
      this.logger.warn({ err: error }, 'refused snapshot');
      this.answerSnapshot(socket, { accepted: false, error });
    };
    const reader = new FrameReader(maxFrameBytes, (kind, payload) => {
      if (failed) return;
      if (kind === FrameKind.Batch) {
        const batch = decodeBatch(payload);
        if (batch.messages.length > 0) this.handler(batch.messages);
        return;
      }
      if (kind !== FrameKind.SnapshotChunk) throw new Error(`unexpected frame kind ${kind}`);
      const c = decodeChunk(payload);
      if (!snapshot) {
        const maxBytes = this.o.maxSnapshotBytes ?? DEFAULTS.maxSnapshotBytes;
        if (!c.message?.snapshot) return refuseSnapshot('first chunk carries no SNAP message');
        if (c.totalBytes > maxBytes) return refuseSnapshot(`snapshot of ${c.totalBytes} bytes exceeds ${maxBytes}`);
        snapshot = { header: c.message, buf: new Uint8Array(c.totalBytes), received: 0 };
      }
      if (c.offset !== snapshot.received || snapshot.received + c.data.length > snapshot.buf.length) {
        return refuseSnapshot(`chunk at ${c.offset} out of order or too long`);
      }
      snapshot.buf.set(c.data, snapshot.received);
      snapshot.received += c.data.length;
      if (snapshot.received < snapshot.buf.length) return;
      const header = snapshot.header;
      header.snapshot = { metadata: header.snapshot!.metadata, data: snapshot.buf };
      snapshot = undefined;
      this.handler([header]);
      this.answerSnapshot(socket, { accepted: true, error: '' });
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (e) {
        // Undecodable bytes: nothing later on this connection can be trusted. The sender reconnects.
        this.logger.warn({ err: (e as Error).message }, 'closing peer connection after a bad frame');
        failed = true;
        socket.destroy();
      }
    });
    socket.on('error', (err) => this.logger.debug({ err: err.message }, 'inbound peer connection failed'));
    socket.once('close', () => this.inbound.delete(socket));
  }

  private answerSnapshot(socket: net.Socket, ack: SnapshotAck): void {
    socket.end(frameBytes(FrameKind.SnapshotAck, encodeAck(ack)));
  }

  send(messages: Message[]): void {
    const touched = new Set<TcpPeerSender>();
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
    if (id === this.o.id) return;
    this.peers.get(id)?.close();
    this.peers.set(
      id,
      new TcpPeerSender({
        selfId: this.o.id,
        peerId: id,
        addr,
        maxQueuedMessages: this.o.maxQueuedMessages ?? DEFAULT_MAX_QUEUED_MESSAGES,
        maxBatchMessages: this.o.maxBatchMessages ?? DEFAULTS.maxBatchMessages,
        snapshotChunkBytes: this.o.snapshotChunkBytes ?? DEFAULTS.snapshotChunkBytes,
        maxFrameBytes: this.o.maxFrameBytes ?? DEFAULTS.maxFrameBytes,
        snapshotDeadlineMs: this.o.snapshotDeadlineMs ?? DEFAULTS.snapshotDeadlineMs,
        reconnectInitialMs: this.o.reconnectInitialMs ?? DEFAULTS.reconnectInitialMs,
        reconnectMaxMs: this.o.reconnectMaxMs ?? DEFAULTS.reconnectMaxMs,
        stalledWriteMs: this.o.stalledWriteMs ?? DEFAULTS.stalledWriteMs,
        onUnreachable: (p) => this.unreachable(p),
        onSnapshotStatus: (p, ok) => this.snapshotStatus(p, ok),
        logger: this.logger,
      }),
    );
  }

  removePeer(id: NodeId): void {
    this.peers.get(id)?.close();
    this.peers.delete(id);
  }

  /** Messages dropped for `peer` because its queue was full. */
  droppedMessages(peer: NodeId): number {
    return this.peers.get(peer)?.droppedMessages ?? 0;
  }

  async close(): Promise<void> {
    for (const p of this.peers.values()) p.close();
    this.peers.clear();
    for (const s of this.inbound) s.destroy();
    this.inbound.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
