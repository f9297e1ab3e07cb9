// Outbound half of the TCP peer transport for one peer: a bounded queue written, at the end of
// every transport.send, as one Batch frame into one long-lived connection, reconnecting with
// exponential backoff. A SNAP message goes out on a connection of its own, in chunks, and the
// receiver answers it with one SnapshotAck frame.

import net from 'node:net';
import { QueuedSender, type PeerSenderOptions } from './queued-sender.js';
import { EMPTY_BYTES, type Message } from '../raft/index.js';
import { decodeAck, encodeBatch, encodeChunk, type SnapshotChunk } from './codec.js';
import { FrameKind, FrameReader, encodeFrame, frameBytes } from './tcp-framing.js';

/** HTTP/2 frame type of the SETTINGS frame a gRPC (HTTP/2) server sends first. */
const HTTP2_SETTINGS_FRAME_TYPE = 0x4;

/** An idle connection is probed by the kernel after this long (a dead peer is then noticed). */
const KEEPALIVE_IDLE_MS = 5_000;

/** Payloads up to this size are copied behind their header (one write); larger ones go as two. */
const COPY_FRAME_MAX_BYTES = 16 * 1024;

/** Both senders' options (queued-sender.ts), plus what only frames on a socket need. */
export interface TcpPeerSenderOptions extends PeerSenderOptions {
  /** Bound on one Batch frame's size, in bytes (estimated from its entries before encoding). */
  maxBatchBytes: number;
  /** Largest frame accepted back (a snapshot ack is tiny; this only bounds a confused peer). */
  maxFrameBytes: number;
  /**
   * A message connection that accepts no more bytes for this long is dropped and reopened: a
   * peer that vanished without a reset (a cut network) would otherwise hold it until the
   * kernel gives up, many minutes later.
   */
  stalledWriteMs: number;
}

/** Splits "host:port" (IPv6 hosts in brackets); port 0 means "any free port" when listening. */
export function parseHostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const port = Number(addr.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`peer address must be host:port, got ${JSON.stringify(addr)}`);
  return { host: addr.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port };
}

export class TcpPeerSender extends QueuedSender<TcpPeerSenderOptions> {
  private socket: net.Socket | undefined;
  private waitingForDrain = false;
  private readonly snapshotSockets = new Set<net.Socket>();
  private readonly target: { host: string; port: number };
  /** Set while the socket holds more than it takes; fires stalledWriteMs after the last progress. */
  private stallTimer: NodeJS.Timeout | undefined;

  constructor(o: TcpPeerSenderOptions) {
    super(o);
    this.target = parseHostPort(o.addr);
  }

  /** Writes everything queued now: the host hands over a whole Ready's messages in one send. */
  kick(): void {
    if (this.closed || this.waitingForDrain || this.backoff.waiting || this.queue.length === 0) return;
    const socket = this.socket ?? this.connect();
    while (this.queue.length > 0) {
      const messages = this.takeBatch();
      if (messages.length === 0) continue;
      if (!writeFrame(socket, FrameKind.Batch, encodeBatch({ from: this.o.selfId, messages }))) {
        // The kernel buffer and the socket's own are full: keep the rest queued (bounded) until
        // drained (the 'drain' listener of connect() calls kick again).
        this.waitingForDrain = true;
        this.armStallTimer(socket, socket.writableLength);
        return;
      }
    }
  }

  /**
   * The next batch off the queue: at most maxBatchMessages messages and about maxBatchBytes
   * (entry bytes are what makes a message large; Raft's maxMsgBytes bounds one append). A single
   * message over maxFrameBytes could never be received: it is dropped here, and Raft resends.
   */
  private takeBatch(): Message[] {
    let n = 0;
    let bytes = 0;
    while (n < this.queue.length && n < this.o.maxBatchMessages) {
      const size = approxMessageBytes(this.queue[n]!);
      if (n > 0 && bytes + size > this.o.maxBatchBytes) break;
      bytes += size;
      n++;
    }
    const messages = this.queue.splice(0, n);
    if (n === 1 && bytes > this.o.maxFrameBytes) {
      this.o.logger.warn({ peer: this.o.peerId, bytes, maxFrameBytes: this.o.maxFrameBytes }, 'dropped a message larger than any frame the peer accepts');
      this.o.onUnreachable(this.o.peerId);
      return [];
    }
    return messages;
  }

  /** Drops `socket` if its buffered bytes stop going down for stalledWriteMs (a slow link that moves is fine). */
  private armStallTimer(socket: net.Socket, bufferedBytes: number): void {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = setTimeout(() => {
      this.stallTimer = undefined;
      if (this.socket !== socket || !this.waitingForDrain) return;
      if (socket.writableLength < bufferedBytes) return this.armStallTimer(socket, socket.writableLength);
      this.o.logger.debug({ peer: this.o.peerId, stalledWriteMs: this.o.stalledWriteMs }, 'peer connection stalled; reconnecting');
      socket.destroy();
    }, this.o.stalledWriteMs);
  }

  private clearStallTimer(): void {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
  }

  private connect(): net.Socket {
    const socket = net.connect({ host: this.target.host, port: this.target.port, noDelay: true, keepAlive: true, keepAliveInitialDelay: KEEPALIVE_IDLE_MS });
    this.socket = socket;
    let connectedAtMs: number | undefined;
    socket.once('connect', () => (connectedAtMs = Date.now()));
    socket.on('drain', () => {
      if (this.socket !== socket) return;
      this.clearStallTimer();
      this.waitingForDrain = false;
      this.kick();
    });
    // Nothing is read on a message connection: a peer that writes to it speaks another protocol.
    socket.on('data', (chunk: Buffer) => {
      const grpcPeer = chunk.length >= 9 && chunk[3] === HTTP2_SETTINGS_FRAME_TYPE;
      this.o.logger.warn(
        { peer: this.o.peerId, addr: this.o.addr },
        grpcPeer
          ? 'peer answered with HTTP/2: it runs --peer-transport grpc; every member must use the same peer transport'
          : 'peer wrote on a message connection (not a raftkv TCP peer?); closing it',
      );
      socket.destroy();
    });
    socket.on('error', (err) => this.o.logger.debug({ peer: this.o.peerId, err: err.message }, 'peer connection failed'));
    socket.once('close', () => {
      if (this.socket === socket) {
        this.socket = undefined;
        this.clearStallTimer();
        this.waitingForDrain = false;
      }
      if (this.closed) return;
      // Only a connection that stayed up proves the peer is back: the kernel accepts for a
      // stopped process, and a peer of another protocol accepts and then hangs up.
      if (connectedAtMs !== undefined && Date.now() - connectedAtMs >= this.o.reconnectMaxMs) this.backoff.reset();
      this.o.onUnreachable(this.o.peerId);
      this.backoff.schedule(() => this.kick());
    });
    return socket;
  }

  protected sendSnapshot(m: Message): void {
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
      if (!writeFrame(socket, FrameKind.SnapshotChunk, encodeChunk(chunk))) await drainedOrClosed(socket);
    }
  }

  close(): void {
    this.closed = true;
    this.clearStallTimer();
    this.backoff.cancel();
    this.socket?.destroy();
    this.socket = undefined;
    for (const s of this.snapshotSockets) s.destroy();
    this.snapshotSockets.clear();
    this.queue = [];
  }
}

/** Resolves on the socket's next 'drain' or 'close', leaving no listener behind. */
function drainedOrClosed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/** Bytes per message besides its entries' data (headers, ids, context): a generous estimate. */
const MESSAGE_OVERHEAD_BYTES = 64;

function approxMessageBytes(m: Message): number {
  let bytes = MESSAGE_OVERHEAD_BYTES + m.context.length;
  for (const e of m.entries) bytes += e.data.length + 24;
  return bytes;
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
