// The contender keys of recently used locks, in memory. Acquiring a lock, checking a fencing
// token and every waiter's "am I first yet?" need the lock's queue: without this cache each
// is a LevelDB range scan, an async iterator with thread-pool round trips (~0.3-0.6 ms on a
// busy node) inside the apply path, where it also delays the next batch.
//
// Like the latest-record cache it holds only published state (what LevelDB holds after the
// last apply batch was written); an apply batch merges its own pending changes on top. It
// keeps the key set only; records come from the latest-record cache. Not replicated state:
// a node's cache never changes what it answers.

/** Lock names whose queues are kept (least recently used dropped first). */
export const DEFAULT_LOCK_QUEUE_CACHE_LOCKS = 10_000;

const SLASH = 0x2f;
const HEX_DIGITS = 16;

function isLowerHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66);
}

/**
 * The lock prefix (`<name>/`, latin-1) of a contender-shaped key `<name>/<16 lowercase hex>`,
 * or undefined for any other key. Every contender key belongs to exactly one lock.
 */
export function contenderPrefixOf(keyMk: string): string | undefined {
  const n = keyMk.length;
  if (n < HEX_DIGITS + 2 || keyMk.charCodeAt(n - HEX_DIGITS - 1) !== SLASH) return undefined;
  for (let i = n - HEX_DIGITS; i < n; i++) if (!isLowerHex(keyMk.charCodeAt(i))) return undefined;
  return keyMk.slice(0, n - HEX_DIGITS);
}

export class LockQueueCache {
  /** Lock prefix (latin-1) -> its contender keys (latin-1). Insertion order = eviction order. */
  private readonly queues = new Map<string, Set<string>>();
  /** Bumped by every published contender change and by clear(): a fill that raced one is dropped. */
  private generation = 0;

  constructor(readonly maxLocks: number = DEFAULT_LOCK_QUEUE_CACHE_LOCKS) {
    if (!Number.isSafeInteger(maxLocks) || maxLocks < 0) throw new RangeError(`lock-queue cache size must be >= 0 locks, got ${maxLocks}`);
  }

  /** The published contender keys of lock `prefixMk`, or undefined when not cached. */
  get(prefixMk: string): ReadonlySet<string> | undefined {
    const q = this.queues.get(prefixMk);
    if (q === undefined) return undefined;
    this.queues.delete(prefixMk);
    this.queues.set(prefixMk, q);
    return q;
  }

  /** Call before reading a queue from LevelDB; pass the result to fill(). */
  fillToken(): number {
    return this.generation;
  }

  /** Caches a queue read from LevelDB, unless a contender change was published since `token`. */
  fill(prefixMk: string, keyMks: Iterable<string>, token: number): void {
    if (token !== this.generation || this.maxLocks === 0) return;
    this.queues.set(prefixMk, new Set(keyMks));
    for (const k of this.queues.keys()) {
      if (this.queues.size <= this.maxLocks) break;
      this.queues.delete(k);
    }
  }

  /** A published write of `keyMk`: present after it (put) or not (delete). */
  published(keyMk: string, present: boolean): void {
    const prefix = contenderPrefixOf(keyMk);
    if (prefix === undefined) return;
    this.generation++;
    const q = this.queues.get(prefix);
    if (q === undefined) return;
    if (present) q.add(keyMk);
    else q.delete(keyMk);
  }

  clear(): void {
    this.queues.clear();
    this.generation++;
  }

  get size(): number {
    return this.queues.size;
  }
}
