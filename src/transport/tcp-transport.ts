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
import { decodeBatch, decodeChunk, encodeAck, type SnapshotAck, type SnapshotChunk } from './codec.js';
import { FrameKind, FrameReader, frameBytes } from './tcp-framing.js';
import { parseHostPort, TcpPeerSender } from './tcp-peer-sender.js';
import { DEFAULT_MAX_QUEUED_MESSAGES } from './transport.js';
import { PEER_TRANSPORT_DEFAULTS, SenderTransport, type PeerTransportOptions } from './sender-transport.js';

export interface TcpTransportOptions extends PeerTransportOptions {
  /** An outbound connection that takes no bytes for this long is dropped and reopened. */
  stalledWriteMs?: number;
  /** Upper bound on one inbound frame (a batch or a snapshot chunk); a larger one closes the connection. */
  maxFrameBytes?: number;
  /** Bound on one outbound batch frame, in bytes (well under the receiver's maxFrameBytes). */
  maxBatchBytes?: number;
  /** Most inbound peer connections at once (each peer uses one, plus one per snapshot in flight). */
  maxInboundConnections?: number;
  /** Most snapshots received at once; another one is refused (the sender retries later). */
  maxInboundSnapshots?: number;
}

const DEFAULTS = {
  ...PEER_TRANSPORT_DEFAULTS,
  stalledWriteMs: 10_000,
  maxFrameBytes: 64 * 1024 * 1024,
  maxBatchBytes: 8 * 1024 * 1024,
  maxInboundConnections: 256,
  maxInboundSnapshots: 4,
};

/** What a gRPC (HTTP/2) client sends first; seen on a TCP peer port it means mixed peer transports. */
const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0');

/** Inbound connections are probed by the kernel after this long idle (a vanished peer is noticed). */
const KEEPALIVE_IDLE_MS = 5_000;

/** Reassembly of one inbound snapshot (its connection carries nothing else). */
interface InboundSnapshot {
  header: Message;
  buf: Uint8Array;
  received: number;
}

export class TcpTransport extends SenderTransport<TcpPeerSender> {
  private readonly inbound = new Set<net.Socket>();
  private snapshotsReceiving = 0;
  private closed = false;
  private readonly logger: Logger;
  /** The port actually bound (useful with port 0). */
  port = 0;

  private constructor(
    private readonly o: TcpTransportOptions,
    private readonly server: net.Server,
  ) {
    super(o.id);
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
    // Accept failures (EMFILE, ...) must not crash the node; the listener keeps going.
    server.on('error', (err) => t.logger.warn({ err: err.message }, 'peer listener error'));
    server.maxConnections = o.maxInboundConnections ?? DEFAULTS.maxInboundConnections;
    return t;
  }

  private accept(socket: net.Socket): void {
    if (this.closed) return void socket.destroy();
    this.inbound.add(socket);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_IDLE_MS);
    socket.on('error', (err) => this.logger.debug({ err: err.message }, 'inbound peer connection failed'));
    socket.once('close', () => this.inbound.delete(socket));
    let snapshot: InboundSnapshot | undefined;
    let done = false;
    const stop = (why: string): void => {
      done = true;
      this.logger.warn({ err: why }, 'closing inbound peer connection');
      socket.destroy();
    };
    const refuseSnapshot = (error: string): void => {
      done = true;
      this.logger.warn({ err: error }, 'refused snapshot');
      this.answerSnapshot(socket, { accepted: false, error });
    };
    const onFrame = (kind: number, payload: Buffer): void => {
      if (done) return;
      if (kind === FrameKind.Batch) {
        if (snapshot) return stop('a batch frame on a snapshot connection');
        let messages: Message[];
        try {
          messages = decodeBatch(payload).messages;
        } catch (e) {
          return stop(`undecodable batch: ${(e as Error).message}`);
        }
        if (messages.length > 0) this.deliver(messages);
        return;
      }
      if (kind !== FrameKind.SnapshotChunk) return stop(`unknown frame kind ${kind}`);
      let c: SnapshotChunk;
      try {
        c = decodeChunk(payload);
      } catch (e) {
        return stop(`undecodable snapshot chunk: ${(e as Error).message}`);
      }
      if (!snapshot) {
        const maxBytes = this.o.maxSnapshotBytes ?? DEFAULTS.maxSnapshotBytes;
        const maxInFlight = this.o.maxInboundSnapshots ?? DEFAULTS.maxInboundSnapshots;
        if (!c.message?.snapshot) return refuseSnapshot('first chunk carries no SNAP message');
        if (c.totalBytes > maxBytes) return refuseSnapshot(`snapshot of ${c.totalBytes} bytes exceeds ${maxBytes}`);
        if (this.snapshotsReceiving >= maxInFlight) return refuseSnapshot(`already receiving ${this.snapshotsReceiving} snapshots (maxInboundSnapshots=${maxInFlight})`);
        snapshot = { header: c.message, buf: new Uint8Array(c.totalBytes), received: 0 };
        this.snapshotsReceiving++;
        socket.once('close', () => this.snapshotsReceiving--);
        // A sender that stops mid-transfer must not hold the buffer forever.
        const deadlineMs = this.o.snapshotDeadlineMs ?? DEFAULTS.snapshotDeadlineMs;
        const deadline = setTimeout(() => stop(`snapshot not complete within snapshotDeadlineMs=${deadlineMs}`), deadlineMs);
        socket.once('close', () => clearTimeout(deadline));
      }
      if (c.offset !== snapshot.received || snapshot.received + c.data.length > snapshot.buf.length) {
        return refuseSnapshot(`chunk at ${c.offset} out of order or too long`);
      }
      snapshot.buf.set(c.data, snapshot.received);
      snapshot.received += c.data.length;
      if (snapshot.received < snapshot.buf.length) return;
      done = true;
      const header = snapshot.header;
      header.snapshot = { metadata: header.snapshot!.metadata, data: snapshot.buf };
      this.deliver([header]);
      this.answerSnapshot(socket, { accepted: true, error: '' });
    };
    const reader = new FrameReader(this.o.maxFrameBytes ?? DEFAULTS.maxFrameBytes, onFrame);
    let first = true;
    socket.on('data', (chunk: Buffer) => {
      if (done) return;
      if (first && chunk.subarray(0, HTTP2_PREFACE.length).equals(HTTP2_PREFACE)) {
        return stop('a peer speaks HTTP/2 (gRPC) to this TCP peer port: every member must use the same --peer-transport');
      }
      first = false;
      try {
        reader.push(chunk);
      } catch (e) {
        // A frame over maxFrameBytes: nothing later on this connection can be trusted. The sender reconnects.
        stop((e as Error).message);
      }
    });
  }

  /** Hands inbound messages to the node; a failure there is the node's, not the connection's. */
  private deliver(messages: Message[]): void {
    try {
      this.handler(messages);
    } catch (e) {
      this.logger.error({ err: (e as Error).message }, 'peer message handler failed');
    }
  }

  private answerSnapshot(socket: net.Socket, ack: SnapshotAck): void {
    socket.end(frameBytes(FrameKind.SnapshotAck, encodeAck(ack)));
  }

  protected newSender(id: NodeId, addr: string): TcpPeerSender {
    return new TcpPeerSender({
      selfId: this.o.id,
      peerId: id,
      addr,
      maxQueuedMessages: this.o.maxQueuedMessages ?? DEFAULT_MAX_QUEUED_MESSAGES,
      maxBatchMessages: this.o.maxBatchMessages ?? DEFAULTS.maxBatchMessages,
      maxBatchBytes: this.o.maxBatchBytes ?? DEFAULTS.maxBatchBytes,
      snapshotChunkBytes: this.o.snapshotChunkBytes ?? DEFAULTS.snapshotChunkBytes,
      maxFrameBytes: this.o.maxFrameBytes ?? DEFAULTS.maxFrameBytes,
      snapshotDeadlineMs: this.o.snapshotDeadlineMs ?? DEFAULTS.snapshotDeadlineMs,
      reconnectInitialMs: this.o.reconnectInitialMs ?? DEFAULTS.reconnectInitialMs,
      reconnectMaxMs: this.o.reconnectMaxMs ?? DEFAULTS.reconnectMaxMs,
      stalledWriteMs: this.o.stalledWriteMs ?? DEFAULTS.stalledWriteMs,
      onUnreachable: (p) => this.unreachable(p),
      onSnapshotStatus: (p, ok) => this.snapshotStatus(p, ok),
      logger: this.logger,
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.closeSenders();
    for (const s of this.inbound) s.destroy();
    this.inbound.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
