// Leader election over the lock queue:
//
//   const el = client.election('svc/primary');
//   await el.campaign('node-a:8080', { ttlSeconds: 5 });    // blocks until leader
//   await el.proclaim('node-a:9090');                       // new value, same term
//   for await (const ev of client.election('svc/primary').observe()) console.log(ev.leader);
//   await el.resign();
//
// The leader is the campaigner with the oldest queue key; its `rev` (the key's create
// revision) is a fencing token, usable as { fence: el.fence } on writes.

import * as grpc from '@grpc/grpc-js';
import type { Bytes, FenceSpec, KvClient } from './kv-client.js';
import { KvClientError, StatusCode, toBytes } from './kv-client.js';
import { asClientError, type LeaseKeepAlive } from './lease.js';
import { acquireQueued } from './lock.js';

export interface CampaignOptions {
  /** TTL of the lease the SDK grants and keeps alive. Default 10 s. */
  ttlSeconds?: number;
  /** Campaign with this existing lease instead (kept alive by the caller). */
  lease?: number;
  /** Give up after this long. Default: wait forever. */
  timeoutMs?: number;
}

export interface ElectionLeader {
  key: Uint8Array;
  value: Uint8Array;
  /** The leader key's create revision: the term's fencing token. */
  rev: number;
  lease: number;
}

export interface ObserveOptions {
  /** Stop observing when aborted. */
  signal?: AbortSignal;
}

export class Election {
  readonly name: Uint8Array;
  private held: { key: Uint8Array; rev: number; lease: number } | undefined;
  private keeper: LeaseKeepAlive | undefined;
  private ownLease = false;

  constructor(
    private readonly client: KvClient,
    name: Bytes,
  ) {
    this.name = toBytes(name);
    if (this.name.length === 0) throw new KvClientError(StatusCode.INVALID_ARGUMENT, 'election name must not be empty', { notSent: true });
  }

  /** Blocks until this campaigner leads; `value` is published as the leader's value. */
  async campaign(value: Bytes, opts: CampaignOptions = {}): Promise<{ key: Uint8Array; rev: number; lease: number }> {
    let lease = opts.lease;
    if (lease === undefined) {
      lease = (await this.client.lease.grant(opts.ttlSeconds ?? 10)).id;
      this.keeper = this.client.lease.keepAlive(lease);
      this.ownLease = true;
    }
    try {
      const r = await acquireQueued(this.client, 'Election', this.name, lease, toBytes(value), opts.timeoutMs);
      this.held = { key: r.key, rev: r.token, lease };
      return this.held;
    } catch (e) {
      await this.dropLease(lease);
      throw e;
    }
  }

  /** The fencing token of the current term (after campaign). */
  get fence(): FenceSpec | undefined {
    return this.held ? { lock: this.name, token: this.held.rev } : undefined;
  }

  /** Resolves if the campaign's lease is lost (SDK-granted leases only). */
  get lost(): Promise<KvClientError> | undefined {
    return this.keeper?.lost;
  }

  private leaderKey(): { name: Uint8Array; key: Uint8Array; rev: number; lease: number } {
    if (!this.held) throw new KvClientError(StatusCode.FAILED_PRECONDITION, 'not campaigning: call campaign() first', { notSent: true });
    return { name: this.name, ...this.held };
  }

  /** Replaces the leader's value; FAILED_PRECONDITION when this campaigner no longer leads. */
  async proclaim(value: Bytes): Promise<{ revision: number }> {
    const r = await this.client.invoke<{ header?: { revision: number } | null }>('Election', 'Proclaim', { leader: this.leaderKey(), value: toBytes(value) }, 'keyed-write');
    return { revision: Number(r.header?.revision ?? 0) };
  }

  /** Gives up leadership (and revokes the SDK's lease). */
  async resign(): Promise<void> {
    const leader = this.leaderKey();
    try {
      await this.client.invoke('Election', 'Resign', { leader }, 'keyed-write');
    } finally {
      this.held = undefined;
      await this.dropLease(leader.lease);
    }
  }

  private async dropLease(lease: number): Promise<void> {
    this.keeper?.close();
    this.keeper = undefined;
    // Revoking the lease we granted also deletes our queue key.
    if (this.ownLease) await this.client.lease.revoke(lease).catch(() => undefined);
    this.ownLease = false;
  }

  /** The current leader, or undefined when there is none. */
  async leader(opts: { timeoutMs?: number } = {}): Promise<ElectionLeader | undefined> {
    try {
      const r = await this.client.invoke<{ kv?: { key: Uint8Array; value: Uint8Array; createRevision: number; lease?: number } | null }>('Election', 'Leader', { name: this.name }, 'read', opts.timeoutMs);
      return r.kv ? leaderOf(r.kv) : undefined;
    } catch (e) {
      if (e instanceof KvClientError && e.code === StatusCode.NOT_FOUND) return undefined;
      throw e;
    }
  }

  /**
   * The current leader, then every change (new leader or new value); `undefined` when the
   * leadership becomes vacant. Reconnects (to the leader) after a node failure, skipping
   * repeats.
   */
  async *observe(opts: ObserveOptions = {}): AsyncGenerator<{ leader: ElectionLeader | undefined }> {
    let last = '';
    let failures = 0;
    while (!opts.signal?.aborted) {
      const queue: Array<{ kv?: unknown } | Error> = [];
      let wake: (() => void) | undefined;
      let done = false;
      let call: grpc.ClientReadableStream<unknown> | undefined;
      let addr: string | undefined;
      const onAbort = () => {
        done = true;
        call?.cancel();
        wake?.();
      };
      opts.signal?.addEventListener('abort', onAbort);
      try {
        const t = await this.client.streamTo('Election', 'Observe');
        addr = t.addr;
        call = t.channel.makeServerStreamRequest(t.def.path, t.def.requestSerialize, t.def.responseDeserialize, { name: this.name }, new grpc.Metadata(), {});
        call.on('data', (m: { kv?: unknown }) => {
          queue.push(m);
          wake?.();
        });
        call.on('error', (e) => {
          queue.push(asClientError(e, addr));
          wake?.();
        });
        call.on('end', () => {
          queue.push(new KvClientError(StatusCode.UNAVAILABLE, 'observe stream ended'));
          wake?.();
        });
        while (!done) {
          if (queue.length === 0) await new Promise<void>((r) => (wake = r));
          const m = queue.shift();
          if (m === undefined) continue;
          if (m instanceof Error) throw m;
          failures = 0;
          const kv = (m as { kv?: { key: Uint8Array; value: Uint8Array; createRevision: number; modRevision: number; lease?: number } | null }).kv;
          const id = kv ? `${kv.createRevision}:${kv.modRevision}` : 'none';
          if (id === last) continue;
          last = id;
          yield { leader: kv ? leaderOf(kv) : undefined };
        }
      } catch (e) {
        if (opts.signal?.aborted) break;
        const err = asClientError(e, addr);
        if (err.code === StatusCode.INVALID_ARGUMENT) throw err;
        this.client.useLeaderHint(err);
        if (!err.leaderHint?.addr) this.client.forgetLeader(addr);
        failures++;
        await new Promise((r) => setTimeout(r, Math.min(1_000, 50 * 2 ** Math.min(failures, 5))));
      } finally {
        opts.signal?.removeEventListener('abort', onAbort);
        call?.cancel();
      }
    }
  }
}

function leaderOf(kv: { key: Uint8Array; value: Uint8Array; createRevision: number; lease?: number }): ElectionLeader {
  return { key: kv.key, value: kv.value, rev: Number(kv.createRevision), lease: Number(kv.lease ?? 0) };
}
