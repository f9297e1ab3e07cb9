// The latest record of recently written or read keys, in memory. Reading a key's previous
// record is part of every put (its version and create revision), and a LevelDB point read
// that misses the memtable probes every level-0 file (no bloom filters in classic-level):
// it was ~40 us of the ~50 us a one-entry apply took on a busy node.
//
// Holds only published state (what LevelDB holds after the last apply batch was written):
// an apply batch publishes its writes after its batch is on disk, readers fill misses from
// LevelDB. Not replicated state: a node's cache never changes what it answers.

import type { KvRecord } from './keys.js';

/** Per-entry bookkeeping estimate (Map slot, record object, strings), bytes. */
const ENTRY_OVERHEAD_BYTES = 96;

export const DEFAULT_LATEST_CACHE_BYTES = 64 * 1024 * 1024;

export class LatestRecordCache {
  /** Latin-1 user key -> record, or null = known absent. Insertion order = eviction order. */
  private readonly map = new Map<string, KvRecord | null>();
  private bytes = 0;

  constructor(readonly maxBytes: number = DEFAULT_LATEST_CACHE_BYTES) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new RangeError(`latest-record cache size must be >= 0 bytes, got ${maxBytes}`);
  }

  /** The cached record, null if known absent, undefined if not cached. */
  get(mapKey: string): KvRecord | null | undefined {
    return this.map.get(mapKey);
  }

  set(mapKey: string, record: KvRecord | null): void {
    const old = this.map.get(mapKey);
    if (old !== undefined) {
      this.bytes -= sizeOf(mapKey, old);
      this.map.delete(mapKey);
    }
    const size = sizeOf(mapKey, record);
    if (size > this.maxBytes) return;
    this.map.set(mapKey, record);
    this.bytes += size;
    for (const [k, r] of this.map) {
      if (this.bytes <= this.maxBytes) break;
      this.map.delete(k);
      this.bytes -= sizeOf(k, r);
    }
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }

  get size(): number {
    return this.map.size;
  }

  get sizeBytes(): number {
    return this.bytes;
  }
}

function sizeOf(mapKey: string, r: KvRecord | null): number {
  return mapKey.length + (r ? r.value.length : 0) + ENTRY_OVERHEAD_BYTES;
}
