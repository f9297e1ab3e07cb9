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
 * Payloads are views, never copied again: of the socket's chunk when a frame arrived whole,
 * else of a buffer that is never written again once a frame was handed out from it.
 */
export class FrameReader {
  /** Bytes of an incomplete frame carried over from earlier pieces, in carry[0, carried). */
  private carry: Buffer | undefined;
  private carried = 0;

  constructor(
    private readonly maxFrameBytes: number,
    private readonly onFrame: (kind: number, payload: Buffer) => void,
  ) {}

  push(chunk: Buffer): void {
    const data = this.carry ? this.append(chunk) : chunk;
    let off = 0;
    for (;;) {
      const available = data.length - off;
      if (available < FRAME_HEADER_BYTES) break;
      const payloadBytes = data.readUInt32BE(off);
      if (payloadBytes > this.maxFrameBytes) throw new FrameError(`peer frame of ${payloadBytes} bytes exceeds maxFrameBytes=${this.maxFrameBytes}`);
      if (available < FRAME_HEADER_BYTES + payloadBytes) break;
      const kind = data[off + 4]!;
      const payload = data.subarray(off + FRAME_HEADER_BYTES, off + FRAME_HEADER_BYTES + payloadBytes);
      off += FRAME_HEADER_BYTES + payloadBytes;
      this.onFrame(kind, payload);
    }
    if (off === data.length) {
      this.carry = undefined;
      this.carried = 0;
      return;
    }
    // Nothing handed out from the carry buffer yet: keep filling it.
    if (this.carry && off === 0) return;
    const rest = data.subarray(off);
    this.carry = Buffer.allocUnsafe(Math.max(rest.length * 2, 4096));
    rest.copy(this.carry);
    this.carried = rest.length;
  }

  /** Appends `chunk` to the carry buffer (doubling it as needed); returns the bytes held. */
  private append(chunk: Buffer): Buffer {
    let carry = this.carry!;
    const needed = this.carried + chunk.length;
    if (needed > carry.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, carry.length * 2));
      carry.copy(grown, 0, 0, this.carried);
      this.carry = carry = grown;
    }
    chunk.copy(carry, this.carried);
    this.carried = needed;
    return carry.subarray(0, needed);
  }
}
