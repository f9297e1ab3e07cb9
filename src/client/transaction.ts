// Optimistic interactive transactions over the public API:
//
//   await client.transaction(async (tx) => {
//     const a = Number(tx.text(await tx.get('acct/a')) ?? 0);
//     tx.put('acct/a', String(a - 10));
//     tx.put('acct/b', String(Number(tx.text(await tx.get('acct/b')) ?? 0) + 10));
//   });
//
// Every read is taken at ONE revision (the first read's), so the transaction sees a consistent
// snapshot; writes are buffered (and visible to later reads of the same transaction). Commit is
// one server Txn that compares the mod revision of every key read against what was seen, then
// applies the buffered writes: if anything read has changed since, nothing is applied and the
// whole function runs again (bounded retries with backoff). The result is serializable for the
// keys read with get(); a range() scan's keys are compared too, but keys inserted into a
// scanned range later are not detected (no phantom protection): read them with get() if they
// matter.

import type { Bytes, GetResult, KvClient, KeyValue, RangeSpec, TxnOpSpec, CompareSpec, WriteOptions } from './kv-client.js';
import { KvClientError, StatusCode, text, toBytes } from './kv-client.js';

export interface TransactionOptions extends WriteOptions {
  /** Attempts after the first conflict. Default 8. */
  maxRetries?: number;
  /** First backoff step after a conflict; doubles up to 500 ms, full jitter. Default 10 ms. */
  baseBackoffMs?: number;
}

type Buffered = { kind: 'put'; value: Uint8Array } | { kind: 'delete' };

const MAX_BACKOFF_MS = 500;

function keyId(key: Uint8Array): string {
  return Buffer.from(key).toString('base64');
}

export class Transaction {
  /** The revision every read of this attempt is taken at (set by the first read). */
  private readRevision: number | undefined;
  /** key -> mod revision seen (0 = absent). */
  private readonly reads = new Map<string, { key: Uint8Array; modRevision: number }>();
  private readonly writes = new Map<string, { key: Uint8Array; op: Buffered }>();

  constructor(private readonly client: KvClient) {}

  /** The value of `key` at the transaction's revision (or as this transaction wrote it). */
  async get(key: Bytes): Promise<Uint8Array | undefined> {
    const k = toBytes(key);
    const w = this.writes.get(keyId(k));
    if (w) return w.op.kind === 'put' ? w.op.value : undefined;
    const r = await this.read(k);
    this.reads.set(keyId(k), { key: k, modRevision: r.kv?.modRevision ?? 0 });
    return r.value;
  }

  /** Keys of a range at the transaction's revision; each key returned is checked at commit. */
  async range(spec: RangeSpec): Promise<KeyValue[]> {
    const res = await this.client.range(spec, this.readRevision === undefined ? {} : { revision: this.readRevision });
    this.readRevision ??= res.header.revision;
    for (const kv of res.kvs) this.reads.set(keyId(kv.key), { key: kv.key, modRevision: kv.modRevision });
    return res.kvs;
  }

  put(key: Bytes, value: Bytes): void {
    const k = toBytes(key);
    this.writes.set(keyId(k), { key: k, op: { kind: 'put', value: toBytes(value) } });
  }

  delete(key: Bytes): void {
    const k = toBytes(key);
    this.writes.set(keyId(k), { key: k, op: { kind: 'delete' } });
  }

  /** Decodes a value as UTF-8 (undefined stays undefined). */
  text(v: Uint8Array | undefined): string | undefined {
    return v === undefined ? undefined : text(v);
  }

  private async read(k: Uint8Array): Promise<GetResult> {
    if (this.readRevision !== undefined) return this.client.get(k, { revision: this.readRevision });
    const r = await this.client.get(k);
    this.readRevision = r.header.revision;
    return r;
  }

  /** The server Txn: compare every read, apply every buffered write. */
  commitSpec(): { compare: CompareSpec[]; success: TxnOpSpec[] } {
    const compare: CompareSpec[] = [...this.reads.values()].map((r) => ({ key: r.key, target: 'modRevision', modRevision: r.modRevision }));
    const success: TxnOpSpec[] = [...this.writes.values()].map((w) =>
      w.op.kind === 'put' ? { put: { key: w.key, value: w.op.value } } : { delete: { key: w.key } },
    );
    return { compare, success };
  }

  get hasWrites(): boolean {
    return this.writes.size > 0;
  }
}

/** Runs `fn` in an optimistic transaction, retrying on conflict; returns fn's result. */
export async function runTransaction<T>(client: KvClient, fn: (tx: Transaction) => Promise<T>, opts: TransactionOptions = {}): Promise<T> {
  const maxRetries = opts.maxRetries ?? 8;
  const baseBackoffMs = opts.baseBackoffMs ?? 10;
  for (let attempt = 0; ; attempt++) {
    const tx = new Transaction(client);
    let result: T;
    try {
      result = await fn(tx);
    } catch (e) {
      // The snapshot revision was compacted away mid-transaction: start over at a newer one.
      if (e instanceof KvClientError && e.code === StatusCode.OUT_OF_RANGE && attempt < maxRetries) continue;
      throw e;
    }
    if (!tx.hasWrites) return result; // read-only: a consistent snapshot needs no commit
    const spec = tx.commitSpec();
    const committed = await client.txn(spec, opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs });
    if (committed.succeeded) return result;
    if (attempt >= maxRetries) {
      throw new KvClientError(StatusCode.ABORTED, `transaction conflicted ${attempt + 1} times (keys it read kept changing); giving up`, { attempts: attempt + 1 });
    }
    const capMs = Math.min(MAX_BACKOFF_MS, baseBackoffMs * 2 ** attempt);
    await new Promise((r) => setTimeout(r, Math.random() * capMs));
  }
}
