// Leases from the SDK: client.lease.grant / revoke / ttl / keepAlive.
//
//   const { id } = await client.lease.grant(10);          // 10 s TTL
//   await client.put('svc/a', 'up', { lease: id });        // vanishes when the lease does
//   const ka = client.lease.keepAlive(id);                 // refresh every ttl/3 over a stream
//   ka.lost.then((e) => console.error('lease lost', e));  // NOT_FOUND: expired or revoked
//   ka.close();
//
// Keepalives go to the leader over one bidi stream; when the stream breaks (leader change,
// node down) the SDK rediscovers the leader and reopens it. A new leader restarts every
// lease's countdown at its full TTL, so a failover never expires a lease that was kept alive.

import * as grpc from '@grpc/grpc-js';
import type { KvClient } from './kv-client.js';
import { KvClientError, StatusCode } from './kv-client.js';

export interface LeaseGrantOptions {
  /** Ask for this id (error FAILED_PRECONDITION if it exists); default: the server picks. */
  id?: number;
  timeoutMs?: number;
}

export interface LeaseTtlResult {
  id: number;
  /** Seconds left by the leader's clock. */
  ttl: number;
  grantedTtl: number;
  /** Attached keys (when asked for). */
  keys: Uint8Array[];
}

export interface KeepAliveOptions {
  /** Time between keepalives. Default: a third of the lease's TTL (at least 100 ms). */
  intervalMs?: number;
}

function usage(msg: string): KvClientError {
  return new KvClientError(StatusCode.INVALID_ARGUMENT, msg, { notSent: true });
}

export function asClientError(e: unknown, addr?: string): KvClientError {
  if (e instanceof KvClientError) return e;
  const se = e as Partial<grpc.ServiceError>;
  if (typeof se?.code === 'number') {
    const hintAddr = se.metadata?.get('x-raftkv-leader-addr')[0];
    const hintId = Number(se.metadata?.get('x-raftkv-leader-id')[0] ?? NaN);
    const leaderHint = Number.isFinite(hintId) && hintId > 0 ? { id: hintId, ...(hintAddr ? { addr: String(hintAddr) } : {}) } : undefined;
    return new KvClientError(se.code, se.details ?? se.message ?? '', { ...(addr ? { endpoint: addr } : {}), ...(leaderHint ? { leaderHint } : {}) });
  }
  return new KvClientError(StatusCode.INTERNAL, (e as Error)?.message ?? String(e));
}

export class LeaseClient {
  constructor(private readonly client: KvClient) {}

  /** A new lease of `ttlSeconds` (1..31,536,000). */
  async grant(ttlSeconds: number, opts: LeaseGrantOptions = {}): Promise<{ id: number; ttl: number }> {
    if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1) throw usage(`lease TTL must be a positive integer number of seconds, got ${ttlSeconds}`);
    const r = await this.client.invoke<{ id: number; ttl: number }>('Lease', 'Grant', { ttl: ttlSeconds, id: opts.id ?? 0 }, 'write', opts.timeoutMs);
    return { id: Number(r.id), ttl: Number(r.ttl) };
  }

  /** Deletes the lease and its keys (NOT_FOUND if it does not exist). Returns the revision. */
  async revoke(id: number, opts: { timeoutMs?: number } = {}): Promise<{ revision: number }> {
    const r = await this.client.invoke<{ header?: { revision: number } | null }>('Lease', 'Revoke', { id }, 'write', opts.timeoutMs);
    return { revision: Number(r.header?.revision ?? 0) };
  }

  /** Remaining and granted TTL (NOT_FOUND if the lease does not exist). */
  async ttl(id: number, opts: { keys?: boolean; timeoutMs?: number } = {}): Promise<LeaseTtlResult> {
    const r = await this.client.invoke<{ id: number; ttl: number; grantedTtl: number; keys?: Uint8Array[] }>('Lease', 'TimeToLive', { id, keys: opts.keys ?? false }, 'read', opts.timeoutMs);
    return { id: Number(r.id), ttl: Number(r.ttl), grantedTtl: Number(r.grantedTtl), keys: r.keys ?? [] };
  }

  /** One keepalive (opens and closes a stream); returns the TTL the countdown restarted with. */
  async keepAliveOnce(id: number, opts: { timeoutMs?: number } = {}): Promise<number> {
    const deadline = Date.now() + (opts.timeoutMs ?? 5_000);
    let lastErr: KvClientError | undefined;
    for (let attempt = 0; attempt < 8 && Date.now() < deadline; attempt++) {
      const s = new KeepAliveStream(this.client);
      try {
        await s.open(deadline);
        return await s.ping(id, deadline);
      } catch (e) {
        lastErr = asClientError(e);
        if (lastErr.code !== StatusCode.UNAVAILABLE && lastErr.code !== StatusCode.DEADLINE_EXCEEDED) throw lastErr;
        this.client.useLeaderHint(lastErr);
        if (!lastErr.leaderHint?.addr) this.client.forgetLeader(s.addr);
        await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
      } finally {
        s.close();
      }
    }
    throw lastErr ?? new KvClientError(StatusCode.DEADLINE_EXCEEDED, `keepalive of lease ${id} timed out`);
  }

  /** Keeps lease `id` alive in the background until close() or until it is lost. */
  keepAlive(id: number, opts: KeepAliveOptions = {}): LeaseKeepAlive {
    return new LeaseKeepAlive(this.client, id, opts);
  }
}

/** One bidi KeepAlive stream to the leader: ping() = one request, one response. */
class KeepAliveStream {
  addr: string | undefined;
  private call: grpc.ClientDuplexStream<unknown, unknown> | undefined;
  private waiting: Array<{ resolve: (ttl: number) => void; reject: (e: KvClientError) => void }> = [];
  private failed: KvClientError | undefined;

  constructor(private readonly client: KvClient) {}

  async open(deadline: number): Promise<void> {
    const t = await this.client.streamTo('Lease', 'KeepAlive', Math.max(1, deadline - Date.now()));
    this.addr = t.addr;
    const call = t.channel.makeBidiStreamRequest(t.def.path, t.def.requestSerialize, t.def.responseDeserialize, new grpc.Metadata(), {});
    this.call = call;
    call.on('data', (m: { ttl?: number }) => this.waiting.shift()?.resolve(Number(m.ttl ?? 0)));
    call.on('error', (e) => this.fail(asClientError(e, this.addr)));
    call.on('end', () => this.fail(new KvClientError(StatusCode.UNAVAILABLE, 'keepalive stream ended')));
  }

  private fail(e: KvClientError): void {
    this.failed ??= e;
    for (const w of this.waiting.splice(0)) w.reject(e);
  }

  ping(id: number, deadline: number): Promise<number> {
    if (this.failed) return Promise.reject(this.failed);
    if (!this.call) return Promise.reject(new KvClientError(StatusCode.UNAVAILABLE, 'keepalive stream not open'));
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        const e = new KvClientError(StatusCode.DEADLINE_EXCEEDED, `no keepalive response for lease ${id}`);
        this.fail(e);
        this.close();
      }, Math.max(1, deadline - Date.now()));
      this.waiting.push({
        resolve: (ttl) => {
          clearTimeout(timer);
          resolve(ttl);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.call!.write({ id });
    });
  }

  get broken(): boolean {
    return this.failed !== undefined;
  }

  close(): void {
    try {
      // Half-close a healthy stream (the server ends its side): a cancel is an HTTP/2 stream
      // reset, and Node's server drops a connection that sends more than ~33 resets/s after a
      // burst of 1000, failing every call on it. Only a broken stream is cancelled.
      if (this.failed === undefined) this.call?.end();
      else this.call?.cancel();
    } catch {
      // already closed
    }
    this.call = undefined;
  }
}

/** A lease kept alive in the background. */
export class LeaseKeepAlive {
  /** Resolves (never rejects) with the reason when the lease is lost: NOT_FOUND = expired/revoked. */
  readonly lost: Promise<KvClientError>;
  /** TTL reported by the last successful keepalive (0 before the first). */
  lastTtl = 0;
  /** Monotonic ms of the last successful keepalive (0 before the first). */
  lastOkAt = 0;
  private closed = false;
  private resolveLost!: (e: KvClientError) => void;
  private stream: KeepAliveStream | undefined;
  private sleepTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  /** Resolves after the first keepalive succeeded (or the lease was lost). */
  readonly ready: Promise<void>;
  private readyResolve!: () => void;

  constructor(
    private readonly client: KvClient,
    readonly id: number,
    private readonly opts: KeepAliveOptions,
  ) {
    this.lost = new Promise((r) => (this.resolveLost = r));
    this.ready = new Promise((r) => (this.readyResolve = r));
    void this.run();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => {
      this.wake = r;
      this.sleepTimer = setTimeout(r, ms);
    });
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      try {
        if (!this.stream || this.stream.broken) {
          this.stream?.close();
          this.stream = new KeepAliveStream(this.client);
          await this.stream.open(Date.now() + 2_000);
        }
        const ttl = await this.stream.ping(this.id, Date.now() + 2_000);
        this.lastTtl = ttl;
        this.lastOkAt = performance.now();
        failures = 0;
        this.readyResolve();
        await this.sleep(this.opts.intervalMs ?? Math.max(100, (ttl * 1000) / 3));
      } catch (e) {
        if (this.closed) break;
        const err = asClientError(e, this.stream?.addr);
        if (err.code === StatusCode.NOT_FOUND) {
          this.closed = true;
          this.resolveLost(err);
          this.readyResolve();
          break;
        }
        // Leader change or node down: follow the hint or rediscover, then retry soon.
        this.client.useLeaderHint(err);
        if (!err.leaderHint?.addr) this.client.forgetLeader(this.stream?.addr);
        this.stream?.close();
        this.stream = undefined;
        failures++;
        await this.sleep(Math.min(1_000, 50 * 2 ** Math.min(failures, 5)));
      }
    }
    this.stream?.close();
  }

  /** Stops keeping the lease alive (it then expires after its TTL unless revoked). */
  close(): void {
    this.closed = true;
    if (this.sleepTimer) clearTimeout(this.sleepTimer);
    this.wake?.();
    this.stream?.close();
  }
}
