// Framing for the TCP peer protocol: every frame is a 4-byte big-endian payload length, a
// 1-byte kind, then the payload (a proto/raft/v1 message). A reader reassembles frames from
// whatever pieces the socket delivers and refuses one over its size bound before buffering it.

/** Bytes before each frame's payload: u32 length + u8 kind. */
export const FRAME_HEADER_BYTES = 5;

export enum FrameKind {
  /** A raft.v1.MessageBatch: every message a node had for one peer in one turn. */
  Batch = 1,
  /** A raft.v1.SnapshotChunk, on a connection of its own that carries one snapshot. */
  SnapshotChunk = 2,
  /** A raft.v1.SnapshotAck, the receiver's answer on a snapshot's connection. */
  SnapshotAck = 3,
}

/** Header and payload of one frame, as two pieces (no copy of the payload). */
export function encodeFrame(kind: FrameKind, payload: Uint8Array): [Buffer, Buffer] {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUInt32BE(payload.length, 0);
  header[4] = kind;
  return [header, Buffer.from(payload.buffer, payload.byteOffset, payload.length)];
}

/** One frame as a single buffer (for writers that send a frame per write call). */
export function frameBytes(kind: FrameKind, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out[4] = kind;
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

/**
 * Splits a byte stream into frames. `push` hands each complete frame to `onFrame` in order;
 * it throws FrameError for a frame longer than `maxFrameBytes` (the stream is then unusable).
 */
export class FrameReader {
  /** Received bytes not yet consumed, in arrival order; `held` is their total length. */
  private pieces: Buffer[] = [];
  private held = 0;

  constructor(
    private readonly maxFrameBytes: number,
    private readonly onFrame: (kind: number, payload: Buffer) => void,
  ) {}

  push(chunk: Buffer): void {
    this.pieces.push(chunk);
    this.held += chunk.length;
    for (;;) {
      if (this.held < FRAME_HEADER_BYTES) return;
      const head = this.contiguous(FRAME_HEADER_BYTES);
      const payloadBytes = head.readUInt32BE(0);
      if (payloadBytes > this.maxFrameBytes) throw new FrameError(`peer frame of ${payloadBytes} bytes exceeds maxFrameBytes=${this.maxFrameBytes}`);
      const frameBytes = FRAME_HEADER_BYTES + payloadBytes;
      // A large frame arrives in many pieces: join them once, when all are here.
      if (this.held < frameBytes) return;
      const whole = this.contiguous(frameBytes);
      const kind = whole[4]!;
      const payload = whole.subarray(FRAME_HEADER_BYTES, frameBytes);
      this.consume(frameBytes);
      this.onFrame(kind, payload);
    }
  }

  /** The first `n` held bytes as one buffer (joining the leading pieces if they are split). */
  private contiguous(n: number): Buffer {
    const first = this.pieces[0]!;
    if (first.length >= n) return first;
    const joined = Buffer.concat(this.pieces);
    this.pieces = [joined];
    return joined;
  }

  private consume(n: number): void {
    const first = this.pieces[0]!;
    this.held -= n;
    if (first.length === n) this.pieces.shift();
    else this.pieces[0] = first.subarray(n);
  }
}
