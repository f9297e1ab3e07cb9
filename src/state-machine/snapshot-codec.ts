// Single-buffer snapshot of the whole state-machine key space:
//   "RKVS" | version u8 | appliedIndex u64 | appliedTerm u64 | revision u64
//   then per key: keyLen u32 | key | valueLen u32 | value
//   then crc32 u32 of everything before it.
// Records are length-prefixed and in key order, so a later streaming version can emit and
// consume the same bytes chunk by chunk; today the whole blob is one Buffer, bounded by
// MAX_SNAPSHOT_BYTES.

import { crc32 } from 'node:zlib';
import { readU64, writeU64 } from '../storage/codec-bytes.js';
import { SnapshotFormatError, SnapshotTooLargeError } from './errors.js';
import type { Meta } from './keys.js';

/** Largest snapshot we build or accept: the whole state is held in memory at once. */
export const MAX_SNAPSHOT_BYTES = 1024 * 1024 * 1024;

const MAGIC = 0x524b5653; // "RKVS"
const FORMAT_VERSION = 1;
const HEADER_BYTES = 4 + 1 + 24;
const CRC_BYTES = 4;

export class SnapshotWriter {
  private readonly parts: Uint8Array[] = [];
  private sizeBytes = HEADER_BYTES + CRC_BYTES;

  constructor(meta: Meta) {
    const h = new Uint8Array(HEADER_BYTES);
    const v = new DataView(h.buffer);
    v.setUint32(0, MAGIC);
    v.setUint8(4, FORMAT_VERSION);
    writeU64(h, 5, meta.appliedIndex);
    writeU64(h, 13, meta.appliedTerm);
    writeU64(h, 21, meta.revision);
    this.parts.push(h);
  }

  add(key: Uint8Array, value: Uint8Array): void {
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, key.length);
    const vlen = new Uint8Array(4);
    new DataView(vlen.buffer).setUint32(0, value.length);
    this.parts.push(len, key, vlen, value);
    this.sizeBytes += 8 + key.length + value.length;
    if (this.sizeBytes > MAX_SNAPSHOT_BYTES) throw new SnapshotTooLargeError(this.sizeBytes, MAX_SNAPSHOT_BYTES);
  }

  finish(): Uint8Array {
    const body = Buffer.concat(this.parts);
    const out = new Uint8Array(body.length + CRC_BYTES);
    out.set(body, 0);
    new DataView(out.buffer).setUint32(body.length, crc32(body));
    return out;
  }
}

export interface ParsedSnapshot {
  meta: Meta;
  records: { key: Uint8Array; value: Uint8Array }[];
}

/** Parses and verifies a snapshot completely before anyone acts on it. */
export function parseSnapshot(data: Uint8Array): ParsedSnapshot {
  if (data.length > MAX_SNAPSHOT_BYTES) throw new SnapshotTooLargeError(data.length, MAX_SNAPSHOT_BYTES);
  if (data.length < HEADER_BYTES + CRC_BYTES) throw new SnapshotFormatError(`${data.length} bytes is too short`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const bodyLen = data.length - CRC_BYTES;
  if (crc32(data.subarray(0, bodyLen)) !== view.getUint32(bodyLen)) throw new SnapshotFormatError('checksum mismatch');
  if (view.getUint32(0) !== MAGIC) throw new SnapshotFormatError('bad magic');
  if (view.getUint8(4) !== FORMAT_VERSION) throw new SnapshotFormatError(`unknown format version ${view.getUint8(4)}`);
  const meta: Meta = { appliedIndex: readU64(data, 5), appliedTerm: readU64(data, 13), revision: readU64(data, 21) };
  const records: ParsedSnapshot['records'] = [];
  let off = HEADER_BYTES;
  while (off < bodyLen) {
    if (off + 4 > bodyLen) throw new SnapshotFormatError(`truncated record at ${off}`);
    const kl = view.getUint32(off);
    if (off + 4 + kl + 4 > bodyLen) throw new SnapshotFormatError(`truncated key at ${off}`);
    const key = data.slice(off + 4, off + 4 + kl);
    off += 4 + kl;
    const vl = view.getUint32(off);
    if (off + 4 + vl > bodyLen) throw new SnapshotFormatError(`truncated value at ${off}`);
    records.push({ key, value: data.slice(off + 4, off + 4 + vl) });
    off += 4 + vl;
  }
  return { meta, records };
}
