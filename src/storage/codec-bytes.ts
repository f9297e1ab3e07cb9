// Fixed-width big-endian integers (so LevelDB's byte order is numeric order) and CRC-sealed
// records, so a torn or bit-flipped value is detected on read instead of served.

import { crc32 } from 'node:zlib';

const TWO_POW_32 = 0x1_0000_0000;

export function writeU64(buf: Uint8Array, offset: number, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a u64-safe integer: ${n}`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  view.setUint32(offset, Math.floor(n / TWO_POW_32));
  view.setUint32(offset + 4, n >>> 0);
}

export function readU64(buf: Uint8Array, offset: number): number {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return view.getUint32(offset) * TWO_POW_32 + view.getUint32(offset + 4);
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
  const out = new Uint8Array(CRC_BYTES + payload.length);
  new DataView(out.buffer).setUint32(0, crc32(payload));
  out.set(payload, CRC_BYTES);
  return out;
}

/** Inverse of seal; throws CorruptRecordError when the checksum does not match. */
export function unseal(record: Uint8Array, what: string): Uint8Array {
  if (record.length < CRC_BYTES) throw new CorruptRecordError(`${what}: record of ${record.length} bytes is too short`);
  const want = new DataView(record.buffer, record.byteOffset, record.byteLength).getUint32(0);
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
