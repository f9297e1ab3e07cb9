// Outbound half of the TCP peer transport for one peer: a bounded queue written, at the end of
// every transport.send, as one Batch frame into one long-lived connection, reconnecting with
// exponential backoff. A SNAP message goes out on a connection of its own, in chunks, and the
// receiver answers it with one SnapshotAck frame.

import net from 'node:net';
import type { Logger } from 'pino';
import { EMPTY_BYTES, MessageType, type Message, type NodeId } from '../raft/index.js';
import { decodeAck, encodeBatch, encodeChunk, type SnapshotChunk } from './codec.js';
import { FrameKind, FrameReader, encodeFrame, frameBytes } from './tcp-framing.js';

/** An idle connection is probed by the kernel after this long (a dead peer is then noticed). */
const KEEPALIVE_IDLE_MS = 5_000;

/** Payloads up to this size are copied behind their header (one write); larger ones go as two. */
const COPY_FRAME_MAX_BYTES = 16 * 1024;

export interface TcpPeerSenderOptions {
  selfId: NodeId;
  peerId: NodeId;
  /** host:port of the peer's peer listener. */
  addr: string;
  maxQueuedMessages: number;
  /** Bound on messages in one Batch frame, so one write stays a reasonable size. */
  maxBatchMessages: number;
  snapshotChunkBytes: number;
  /** Largest frame accepted back (a snapshot ack is tiny; this only bounds a confused peer). */
  maxFrameBytes: number;
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  /** A snapshot transfer that takes longer than this fails (and is reported as failed). */
  snapshotDeadlineMs: number;
  /**
   * A message connection that accepts no more bytes for this long is dropped and reopened: a
   * peer that vanished without a reset (a cut network) would otherwise hold it until the
   * kernel gives up, many minutes later.
   */
  stalledWriteMs: number;
  onUnreachable: (peer: NodeId) => void;
  onSnapshotStatus: (peer: NodeId, ok: boolean) => void;
  logger: Logger;
}

/** Splits "host:port" (IPv6 hosts in brackets); port 0 means "any free port" when listening. */
export function parseHostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const port = Number(addr.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`peer address must be host:port, got ${JSON.stringify(addr)}`);
  return { host: addr.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port };
}

export class TcpPeerSender {
  private queue: Message[] = [];
  private socket: net.Socket | undefined;
  private waitingForDrain = false;
  private backoffMs: number;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly snapshotSockets = new Set<net.Socket>();
  private readonly target: { host: string; port: number };
  /** Messages dropped because the queue was full (for status/metrics). */
  droppedMessages = 0;

  constructor(private readonly o: TcpPeerSenderOptions) {
    this.backoffMs = o.reconnectInitialMs;
    this.target = parseHostPort(o.addr);
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

  /** Writes everything queued now: the host hands over a whole Ready's messages in one send. */
  kick(): void {
    if (this.closed || this.waitingForDrain || this.reconnectTimer || this.queue.length === 0) return;
    const socket = this.socket ?? this.connect();
    while (this.queue.length > 0) {
      const messages = this.queue.splice(0, this.o.maxBatchMessages);
      if (!writeFrame(socket, FrameKind.Batch, encodeBatch({ from: this.o.selfId, messages }))) {
        // The kernel buffer and the socket's own are full: keep the rest queued (bounded) until drained.
        this.waitingForDrain = true;
        const stalled = setTimeout(() => {
          this.o.logger.debug({ peer: this.o.peerId, stalledWriteMs: this.o.stalledWriteMs }, 'peer connection stalled; reconnecting');
          socket.destroy();
        }, this.o.stalledWriteMs);
        socket.once('drain', () => {
          clearTimeout(stalled);
          this.waitingForDrain = false;
          this.kick();
        });
        socket.once('close', () => clearTimeout(stalled));
        return;
      }
    }
  }

  private connect(): net.Socket {
    const socket = net.connect({ host: this.target.host, port: this.target.port, noDelay: true, keepAlive: true, keepAliveInitialDelay: KEEPALIVE_IDLE_MS });
    this.socket = socket;
    // A peer that accepted the connection is back: reset the backoff.
    socket.once('connect', () => (this.backoffMs = this.o.reconnectInitialMs));
    // Nothing is read on a message connection; a peer that writes to it is confused: drop it.
    socket.on('data', () => socket.destroy());
    socket.on('error', (err) => this.o.logger.debug({ peer: this.o.peerId, err: err.message }, 'peer connection failed'));
    socket.once('close', () => {
      if (this.socket === socket) this.socket = undefined;
      if (this.closed) return;
      this.waitingForDrain = false;
      this.o.onUnreachable(this.o.peerId);
      this.scheduleReconnect();
    });
    return socket;
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer || this.closed) return;
    const delayMs = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.o.reconnectMaxMs);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.kick();
    }, delayMs);
  }

  private sendSnapshot(m: Message): void {
    const data = m.snapshot?.data ?? EMPTY_BYTES;
    const header: Message = { ...m, snapshot: m.snapshot && { metadata: m.snapshot.metadata, data: EMPTY_BYTES } };
    const socket = net.connect({ host: this.target.host, port: this.target.port, noDelay: true });
    this.snapshotSockets.add(socket);
    let settled = false;
    const finish = (ok: boolean, error: string | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      this.snapshotSockets.delete(socket);
      socket.destroy();
      if (this.closed) return;
      if (!ok) this.o.logger.warn({ peer: this.o.peerId, err: error }, 'snapshot send failed');
      this.o.onSnapshotStatus(this.o.peerId, ok);
      if (!ok && error !== undefined && !error.startsWith('refused')) this.o.onUnreachable(this.o.peerId);
    };
    const deadline = setTimeout(() => finish(false, `no answer within snapshotDeadlineMs=${this.o.snapshotDeadlineMs}`), this.o.snapshotDeadlineMs);
    const reader = new FrameReader(this.o.maxFrameBytes, (kind, payload) => {
      if (kind !== FrameKind.SnapshotAck) return finish(false, `unexpected frame kind ${kind} on a snapshot connection`);
      try {
        const ack = decodeAck(payload);
        finish(ack.accepted, ack.accepted ? undefined : `refused by peer: ${ack.error}`);
      } catch (e) {
        finish(false, `bad snapshot ack: ${(e as Error).message}`);
      }
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (e) {
        finish(false, (e as Error).message);
      }
    });
    socket.on('error', (err) => finish(false, err.message));
    socket.on('close', () => finish(false, 'connection closed before the snapshot was acknowledged'));
    void this.writeChunks(socket, header, data, () => settled);
  }

  private async writeChunks(socket: net.Socket, header: Message, data: Uint8Array, settled: () => boolean): Promise<void> {
    const step = this.o.snapshotChunkBytes;
    for (let offset = 0; offset === 0 || offset < data.length; offset += step) {
      if (settled() || this.closed) return;
      const chunk: SnapshotChunk = { totalBytes: data.length, offset, data: data.subarray(offset, offset + step) };
      if (offset === 0) chunk.message = header;
      if (!writeFrame(socket, FrameKind.SnapshotChunk, encodeChunk(chunk))) {
        await new Promise<void>((resolve) => {
          socket.once('drain', resolve);
          socket.once('close', resolve);
        });
      }
    }
  }

  close(): void {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.socket?.destroy();
    this.socket = undefined;
    for (const s of this.snapshotSockets) s.destroy();
    this.snapshotSockets.clear();
    this.queue = [];
  }
}

/** Writes one frame; false when the socket asks the writer to wait for 'drain'. */
function writeFrame(socket: net.Socket, kind: FrameKind, payload: Uint8Array): boolean {
  if (payload.length <= COPY_FRAME_MAX_BYTES) return socket.write(frameBytes(kind, payload));
  const [head, body] = encodeFrame(kind, payload);
  socket.cork();
  socket.write(head);
  const ok = socket.write(body);
  socket.uncork();
  return ok;
}
