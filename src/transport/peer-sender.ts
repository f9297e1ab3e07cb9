// Outbound half for one peer: a bounded queue written, at the end of every transport.send, into one
// long-lived client stream, reconnecting with exponential backoff. SNAP messages go out on
// their own SendSnapshot call, in chunks.

import * as grpc from '@grpc/grpc-js';
import { EMPTY_BYTES, type Message } from '../raft/index.js';
import type { MessageBatch, SnapshotAck, SnapshotChunk, StreamSummary } from './codec.js';
import { QueuedSender, type PeerSenderOptions } from './queued-sender.js';

export type { PeerSenderOptions } from './queued-sender.js';

type RaftClient = grpc.Client & {
  Stream(cb: (err: grpc.ServiceError | null, res?: StreamSummary) => void): grpc.ClientWritableStream<MessageBatch>;
  SendSnapshot(opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: SnapshotAck) => void): grpc.ClientWritableStream<SnapshotChunk>;
};

export class PeerSender extends QueuedSender {
  private stream: grpc.ClientWritableStream<MessageBatch> | undefined;
  private waitingForDrain = false;

  constructor(
    private readonly client: RaftClient,
    o: PeerSenderOptions,
  ) {
    super(o);
  }

  /**
   * Writes everything queued now. The host hands over a whole Ready's messages in one
   * transport.send, so that is already the batch; deferring the write to a later turn only
   * delayed appends and acks behind the apply work that follows in the same turn.
   */
  kick(): void {
    this.flush();
  }

  private flush(): void {
    if (this.closed || this.waitingForDrain || this.backoff.waiting || this.queue.length === 0) return;
    const stream = this.stream ?? this.openStream();
    while (this.queue.length > 0) {
      const messages = this.queue.splice(0, this.o.maxBatchMessages);
      if (!stream.write({ from: this.o.selfId, messages })) {
        // HTTP/2 flow control is pushing back: keep the rest queued (bounded) until drained.
        this.waitingForDrain = true;
        stream.once('drain', () => {
          this.waitingForDrain = false;
          this.flush();
        });
        return;
      }
    }
  }

  private openStream(): grpc.ClientWritableStream<MessageBatch> {
    const stream = this.client.Stream((err) => {
      if (this.stream === stream) this.stream = undefined;
      if (this.closed) return;
      this.o.logger.debug({ peer: this.o.peerId, err: err?.message }, 'peer stream ended');
      this.waitingForDrain = false;
      this.o.onUnreachable(this.o.peerId);
      this.backoff.schedule(() => this.kick());
    });
    // Errors also arrive through the callback above; this listener only keeps them from being unhandled.
    stream.on('error', () => {});
    // A stream that delivered something proves the peer is back: reset the backoff.
    stream.once('metadata', () => this.backoff.reset());
    this.stream = stream;
    return stream;
  }

  protected sendSnapshot(m: Message): void {
    const data = m.snapshot?.data ?? EMPTY_BYTES;
    const header: Message = { ...m, snapshot: m.snapshot && { metadata: m.snapshot.metadata, data: EMPTY_BYTES } };
    const call = this.client.SendSnapshot({ deadline: Date.now() + this.o.snapshotDeadlineMs }, (err, ack) => {
      const ok = !err && ack?.accepted === true;
      if (!ok) this.o.logger.warn({ peer: this.o.peerId, err: err?.message ?? ack?.error }, 'snapshot send failed');
      this.o.onSnapshotStatus(this.o.peerId, ok);
      if (err) this.o.onUnreachable(this.o.peerId);
    });
    call.on('error', () => {});
    void this.writeChunks(call, header, data);
  }

  private async writeChunks(call: grpc.ClientWritableStream<SnapshotChunk>, header: Message, data: Uint8Array): Promise<void> {
    const step = this.o.snapshotChunkBytes;
    for (let offset = 0; offset === 0 || offset < data.length; offset += step) {
      const chunk: SnapshotChunk = { totalBytes: data.length, offset, data: data.subarray(offset, offset + step) };
      if (offset === 0) chunk.message = header;
      if (!call.write(chunk)) await new Promise<void>((resolve) => call.once('drain', resolve));
      if (this.closed) break;
    }
    call.end();
  }

  close(): void {
    this.closed = true;
    this.backoff.cancel();
    this.stream?.end();
    this.stream = undefined;
    this.queue = [];
    this.client.close();
  }
}
