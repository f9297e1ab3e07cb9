// Fixed-width big-endian integers (so LevelDB's byte order is numeric order) and CRC-sealed
// records, so a torn or bit-flipped value is detected on read instead of served.

import { crc32 } from 'node:zlib';

const TWO_POW_32 = 0x1_0000_0000;

// Byte by byte rather than through a DataView: these run several times per applied entry,
// and a DataView per call was the largest item of a follower's apply profile.
export function writeU64(buf: Uint8Array, offset: number, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a u64-safe integer: ${n}`);
  const hi = Math.floor(n / TWO_POW_32);
  const lo = n >>> 0;
  buf[offset] = hi >>> 24;
  buf[offset + 1] = (hi >>> 16) & 0xff;
  buf[offset + 2] = (hi >>> 8) & 0xff;
  buf[offset + 3] = hi & 0xff;
  buf[offset + 4] = lo >>> 24;
  buf[offset + 5] = (lo >>> 16) & 0xff;
  buf[offset + 6] = (lo >>> 8) & 0xff;
  buf[offset + 7] = lo & 0xff;
}

export function writeU32(buf: Uint8Array, offset: number, n: number): void {
  buf[offset] = n >>> 24;
  buf[offset + 1] = (n >>> 16) & 0xff;
  buf[offset + 2] = (n >>> 8) & 0xff;
  buf[offset + 3] = n & 0xff;
}

/**
 * `n` uninitialized bytes for an encoding that lives only until LevelDB copies it into a batch.
 * Below 4 KiB they are a slice of Node's shared Buffer pool: one `new Uint8Array` per record
 * was one malloc'd ArrayBuffer each, and malloc/free plus V8's ArrayBuffer sweeper showed at
 * the top of the apply path's native profile. Never keep one (it pins its 8 KiB pool slab),
 * never view its `.buffer` from offset 0, and write every byte.
 */
export function scratchBytes(n: number): Uint8Array {
  return Buffer.allocUnsafe(n);
}

export function readU32(buf: Uint8Array, offset: number): number {
  if (offset < 0 || offset + 4 > buf.length) throw new RangeError(`readU32 at ${offset} is outside a ${buf.length}-byte buffer`);
  return ((buf[offset]! << 24) | (buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!) >>> 0;
}

/**
 * The bytes as a latin-1 string (one char per byte, so string order is byte order): map keys.
 * Short arrays go through String.fromCharCode: Buffer.from(arr.buffer) makes V8 move a small
 * on-heap typed array's bytes to a malloc'd backing store first (3x slower, and more work for
 * the ArrayBuffer sweeper).
 */
export function latin1Of(b: Uint8Array): string {
  if (b.length <= 64) return String.fromCharCode.apply(null, b as unknown as number[]);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

export function readU64(buf: Uint8Array, offset: number): number {
  if (offset < 0 || offset + 8 > buf.length) throw new RangeError(`readU64 at ${offset} is outside a ${buf.length}-byte buffer`);
  const hi = ((buf[offset]! << 24) | (buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!) >>> 0;
  const lo = ((buf[offset + 4]! << 24) | (buf[offset + 5]! << 16) | (buf[offset + 6]! << 8) | buf[offset + 7]!) >>> 0;
  return hi * TWO_POW_32 + lo;
}

/** A stored record failed its checksum or has an impossible shape. */
export class CorruptRecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CorruptRecordError';
  }
}

const CRC_BYTES = 4;

/** [crc32 of payload u32][payload]. */
export function seal(payload: Uint8Array): Uint8Array {
  const out = scratchBytes(CRC_BYTES + payload.length);
  writeU32(out, 0, crc32(payload));
  out.set(payload, CRC_BYTES);
  return out;
}

/**
 * seal() of a payload of `payloadBytes` that `fill` writes in place (at offset CRC_BYTES of the
 * result): one buffer instead of payload + sealed copy.
 */
export function sealInPlace(payloadBytes: number, fill: (out: Uint8Array, at: number) => void): Uint8Array {
  const out = scratchBytes(CRC_BYTES + payloadBytes);
  fill(out, CRC_BYTES);
  writeU32(out, 0, crc32(out.subarray(CRC_BYTES)));
  return out;
}

/** Inverse of seal; throws CorruptRecordError when the checksum does not match. */
export function unseal(record: Uint8Array, what: string): Uint8Array {
  if (record.length < CRC_BYTES) throw new CorruptRecordError(`${what}: record of ${record.length} bytes is too short`);
  const want = readU32(record, 0);
  const payload = record.subarray(CRC_BYTES);
  if (crc32(payload) !== want) throw new CorruptRecordError(`${what}: checksum mismatch`);
  return payload;
}

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Lexicographic byte comparison (LevelDB's default order). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}
