// A client session: read-your-writes and monotonic reads on any node, causal consistency
// when its token is handed to another process. The session remembers the highest revision
// its writes produced and its reads observed, and sends it as `min_revision` with every
// SESSION read; a node serves the read once it has applied that revision.

import type {
  Bytes,
  DeleteOptions,
  DeleteResult,
  GetResult,
  KvClient,
  PutOptions,
  PutResult,
  RangeResult,
  RangeSpec,
  ReadCallOptions,
  TxnResult,
  TxnSpec,
  CallOptions,
} from './kv-client.js';
import { KvClientError, StatusCode } from './kv-client.js';

const TOKEN_PREFIX = 'rkv1.';

/** A session token: `rkv1.<revision>`; opaque to callers, stable across versions 1.x. */
export function encodeSessionToken(revision: number): string {
  return `${TOKEN_PREFIX}${revision}`;
}

export function decodeSessionToken(token: string): number {
  const rev = token.startsWith(TOKEN_PREFIX) ? Number(token.slice(TOKEN_PREFIX.length)) : NaN;
  if (!Number.isSafeInteger(rev) || rev < 0) {
    throw new KvClientError(StatusCode.INVALID_ARGUMENT, `invalid session token "${token}" (expected ${TOKEN_PREFIX}<revision>)`, { notSent: true });
  }
  return rev;
}

type SessionReadOptions = Omit<ReadCallOptions, 'consistency' | 'minRevision' | 'maxStalenessMs'>;

export class Session {
  private revision: number;

  constructor(
    private readonly client: KvClient,
    fromToken?: string,
  ) {
    this.revision = fromToken === undefined ? 0 : decodeSessionToken(fromToken);
  }

  /** The highest revision this session has written or seen. */
  get minRevision(): number {
    return this.revision;
  }

  /** Pass this to another process (`client.session(token)`) to carry causality along. */
  token(): string {
    return encodeSessionToken(this.revision);
  }

  private observe(revision: number): void {
    if (revision > this.revision) this.revision = revision;
  }

  async get(key: Bytes, opts: SessionReadOptions = {}): Promise<GetResult> {
    const r = await this.client.get(key, { ...opts, consistency: 'session', minRevision: this.revision });
    this.observe(r.header.revision);
    return r;
  }

  async range(spec: RangeSpec, opts: SessionReadOptions = {}): Promise<RangeResult> {
    const r = await this.client.range(spec, { ...opts, consistency: 'session', minRevision: this.revision });
    this.observe(r.header.revision);
    return r;
  }

  async put(key: Bytes, value: Bytes, opts: PutOptions = {}): Promise<PutResult> {
    const r = await this.client.put(key, value, opts);
    this.observe(r.revision);
    return r;
  }

  async delete(key: Bytes, opts: DeleteOptions = {}): Promise<DeleteResult> {
    const r = await this.client.delete(key, opts);
    this.observe(r.revision);
    return r;
  }

  async txn(spec: TxnSpec, opts: CallOptions = {}): Promise<TxnResult> {
    const r = await this.client.txn(spec, opts);
    this.observe(r.revision);
    return r;
  }
}
