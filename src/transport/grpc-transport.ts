// gRPC implementation of Transport: a server for inbound peer streams plus one PeerSender
// (long-lived client stream, bounded queue, reconnect) per peer.

import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import type { Message, NodeId } from '../raft/index.js';
import { raftServiceDefinition, type MessageBatch, type SnapshotAck, type SnapshotChunk, type StreamSummary } from './codec.js';
import { PeerSender } from './peer-sender.js';
import { bindInsecure } from '../wire/grpc-service.js';
import { DEFAULT_MAX_QUEUED_MESSAGES } from './transport.js';
import { PEER_TRANSPORT_DEFAULTS, SenderTransport, type PeerTransportOptions } from './sender-transport.js';

export interface GrpcTransportOptions extends PeerTransportOptions {
  /** Upper bound on one inbound gRPC message (a streamed batch or a snapshot chunk). */
  maxReceiveMessageBytes?: number;
}

const DEFAULTS = { ...PEER_TRANSPORT_DEFAULTS, maxReceiveMessageBytes: 64 * 1024 * 1024 };

export class GrpcTransport extends SenderTransport<PeerSender> {
  private readonly clientCtor = grpc.makeGenericClientConstructor(raftServiceDefinition(), 'Raft');
  private readonly logger: Logger;
  /** The port actually bound (useful with port 0). */
  port = 0;

  private constructor(
    private readonly o: GrpcTransportOptions,
    private readonly server: grpc.Server,
  ) {
    super(o.id);
    this.logger = o.logger ?? pino({ level: 'silent' });
  }

  static async start(o: GrpcTransportOptions): Promise<GrpcTransport> {
    const server = new grpc.Server({ 'grpc.max_receive_message_length': o.maxReceiveMessageBytes ?? DEFAULTS.maxReceiveMessageBytes, 'grpc.enable_channelz': 0 });
    const t = new GrpcTransport(o, server);
    server.addService(raftServiceDefinition(), { Stream: t.handleStream.bind(t), SendSnapshot: t.handleSnapshot.bind(t) });
    t.port = await bindInsecure(server, o.listenAddr, 'peer address');
    return t;
  }

  private handleStream(call: grpc.ServerReadableStream<MessageBatch, StreamSummary>, cb: grpc.sendUnaryData<StreamSummary>): void {
    let batches = 0;
    call.on('data', (batch: MessageBatch) => {
      batches++;
      if (batch.messages.length > 0) this.handler(batch.messages);
    });
    call.on('end', () => cb(null, { batchesReceived: batches }));
    call.on('error', (err) => this.logger.debug({ err: err.message }, 'inbound peer stream failed'));
  }

  private handleSnapshot(call: grpc.ServerReadableStream<SnapshotChunk, SnapshotAck>, cb: grpc.sendUnaryData<SnapshotAck>): void {
    const maxBytes = this.o.maxSnapshotBytes ?? DEFAULTS.maxSnapshotBytes;
    let header: Message | undefined;
    let buf: Uint8Array | undefined;
    let received = 0;
    let failed: string | undefined;
    call.on('data', (c: SnapshotChunk) => {
      if (failed) return;
      if (!header) {
        if (!c.message?.snapshot) return void (failed = 'first chunk carries no SNAP message');
        if (c.totalBytes > maxBytes) return void (failed = `snapshot of ${c.totalBytes} bytes exceeds ${maxBytes}`);
        header = c.message;
        buf = new Uint8Array(c.totalBytes);
      }
      if (c.offset !== received || received + c.data.length > buf!.length) return void (failed = `chunk at ${c.offset} out of order or too long`);
      buf!.set(c.data, received);
      received += c.data.length;
    });
    call.on('end', () => {
      if (!failed && (!header || received !== buf!.length)) failed = `snapshot truncated: ${received} bytes received`;
      if (failed) {
        this.logger.warn({ err: failed }, 'refused snapshot');
        return cb(null, { accepted: false, error: failed });
      }
      header!.snapshot = { metadata: header!.snapshot!.metadata, data: buf! };
      this.handler([header!]);
      cb(null, { accepted: true, error: '' });
    });
    call.on('error', (err) => this.logger.debug({ err: err.message }, 'inbound snapshot stream failed'));
  }

  protected newSender(id: NodeId, addr: string): PeerSender {
    const client = new this.clientCtor(addr, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': this.o.maxReceiveMessageBytes ?? DEFAULTS.maxReceiveMessageBytes,
      'grpc.enable_channelz': 0,
      // Reconnect quickly after a peer restarts; PeerSender paces stream re-creation itself.
      'grpc.initial_reconnect_backoff_ms': this.o.reconnectInitialMs ?? DEFAULTS.reconnectInitialMs,
      'grpc.max_reconnect_backoff_ms': this.o.reconnectMaxMs ?? DEFAULTS.reconnectMaxMs,
    });
    return new PeerSender(client as never, {
      selfId: this.o.id,
      peerId: id,
      addr,
      maxQueuedMessages: this.o.maxQueuedMessages ?? DEFAULT_MAX_QUEUED_MESSAGES,
      maxBatchMessages: this.o.maxBatchMessages ?? DEFAULTS.maxBatchMessages,
      snapshotChunkBytes: this.o.snapshotChunkBytes ?? DEFAULTS.snapshotChunkBytes,
      snapshotDeadlineMs: this.o.snapshotDeadlineMs ?? DEFAULTS.snapshotDeadlineMs,
      reconnectInitialMs: this.o.reconnectInitialMs ?? DEFAULTS.reconnectInitialMs,
      reconnectMaxMs: this.o.reconnectMaxMs ?? DEFAULTS.reconnectMaxMs,
      onUnreachable: (p) => this.unreachable(p),
      onSnapshotStatus: (p, ok) => this.snapshotStatus(p, ok),
      logger: this.logger,
    });
  }

  async close(): Promise<void> {
    this.closeSenders();
    // No grace period: the inbound streams are live peers' long-lived Raft streams, which never
    // end by themselves (a graceful shutdown just waited out its 1 s timeout on every stop),
    // and Raft retransmits whatever a cut stream lost.
    this.server.forceShutdown();
  }
}
