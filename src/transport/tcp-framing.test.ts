import { describe, expect, it } from 'vitest';
import { FRAME_HEADER_BYTES, FrameError, FrameKind, FrameReader, encodeFrame, frameBytes } from './tcp-framing.js';

function collect(maxFrameBytes = 1 << 20): { reader: FrameReader; frames: Array<[number, number[]]> } {
  const frames: Array<[number, number[]]> = [];
  return { reader: new FrameReader(maxFrameBytes, (kind, payload) => frames.push([kind, [...payload]])), frames };
}

describe('FrameReader', () => {
  const payloads = [Uint8Array.of(1, 2, 3), new Uint8Array(0), Uint8Array.from({ length: 300 }, (_, i) => i % 256)];
  const stream = Buffer.concat(payloads.map((p, i) => frameBytes(i === 1 ? FrameKind.SnapshotAck : FrameKind.Batch, p)));
  const expected = payloads.map((p, i) => [i === 1 ? FrameKind.SnapshotAck : FrameKind.Batch, [...p]]);

  it('reads frames that arrive together in one piece', () => {
    const { reader, frames } = collect();
    reader.push(stream);
    expect(frames).toEqual(expected);
  });

  it('reads the same frames whatever the socket splits them into', () => {
    for (const size of [1, 2, 4, 5, 6, 7, 64, 301]) {
      const { reader, frames } = collect();
      for (let off = 0; off < stream.length; off += size) reader.push(stream.subarray(off, off + size));
      expect(frames, `pieces of ${size} bytes`).toEqual(expected);
    }
  });

  it('a payload handed out stays intact while later bytes arrive (its buffer is not reused)', () => {
    const payloads: Buffer[] = [];
    const reader = new FrameReader(1 << 20, (_k, p) => payloads.push(p));
    const a = frameBytes(FrameKind.Batch, new Uint8Array(50).fill(0xaa));
    const b = frameBytes(FrameKind.Batch, new Uint8Array(50).fill(0xbb));
    reader.push(a.subarray(0, 20)); // A starts in the carry buffer
    reader.push(Buffer.concat([a.subarray(20), b.subarray(0, 30)])); // A completes from it, B begins
    reader.push(b.subarray(30));
    expect(payloads).toHaveLength(2);
    expect(payloads[0]!.every((x) => x === 0xaa)).toBe(true);
    expect(payloads[1]!.every((x) => x === 0xbb)).toBe(true);
  });

  it('reassembles a large frame trickled in small pieces', () => {
    const big = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 7) % 256);
    const { reader, frames } = collect();
    const framed = frameBytes(FrameKind.SnapshotChunk, big);
    for (let off = 0; off < framed.length; off += 997) reader.push(framed.subarray(off, off + 997));
    expect(frames).toHaveLength(1);
    expect(Buffer.from(frames[0]![1]).equals(Buffer.from(big))).toBe(true);
  });

  it('refuses a frame over maxFrameBytes from its header alone', () => {
    const { reader, frames } = collect(100);
    const [head] = encodeFrame(FrameKind.Batch, new Uint8Array(101));
    expect(() => reader.push(head)).toThrow(FrameError);
    expect(() => reader.push(head)).toThrow(/101 bytes exceeds maxFrameBytes=100/);
    expect(frames).toEqual([]);
  });

  it('accepts a frame of exactly maxFrameBytes', () => {
    const { reader, frames } = collect(100);
    reader.push(frameBytes(FrameKind.Batch, new Uint8Array(100).fill(9)));
    expect(frames).toHaveLength(1);
    expect(frames[0]![1]).toHaveLength(100);
  });

  it('two-piece encoding carries the same bytes as the copied one', () => {
    const p = Uint8Array.of(5, 6, 7);
    const [head, body] = encodeFrame(FrameKind.SnapshotChunk, p);
    expect(head).toHaveLength(FRAME_HEADER_BYTES);
    expect(Buffer.concat([head, body])).toEqual(frameBytes(FrameKind.SnapshotChunk, p));
  });
});
