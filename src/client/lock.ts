// Distributed locks with fencing tokens:
//
//   const lk = await client.lock('jobs/nightly', { ttlSeconds: 10 });
//   try {
//     await client.put('report', data, { fence: lk.fence });   // rejected once lk is stale
//   } finally {
//     await lk.release();
//   }
//
// Waiters queue in log order (fair FIFO). The holder's token is the create revision of its
// queue key and only grows from one holder to the next. A holder that stalls (GC pause,
// SIGSTOP) past its lease TTL loses the lock to the next waiter; its later writes carrying
// `fence` are then rejected by the state machine (FAILED_PRECONDITION "stale fencing token"),
// which is what makes the lock safe, not the timing.

import type { Bytes, FenceSpec, KvClient } from './kv-client.js';
import { KvClientError, StatusCode, text, toBytes } from './kv-client.js';
import type { LeaseKeepAlive } from './lease.js';

export interface LockOptions {
  /** TTL of the lease the SDK grants and keeps alive for this lock. Default 10 s. */
  ttlSeconds?: number;
  /** Use this existing lease instead (the caller keeps it alive; release() does not revoke it). */
  lease?: number;
  /** Give up waiting after this long (the place in the queue is dropped). Default: wait forever. */
  timeoutMs?: number;
}

export interface LockHandle {
  name: Uint8Array;
  /** The queue key `<name>/<lease hex>` (Unlock deletes it). */
  key: Uint8Array;
  /** Fencing token: grows with every acquisition of this lock. */
  token: number;
  lease: number;
  /** Pass as `{ fence }` to put/delete/txn. */
  fence: FenceSpec;
  /** Resolves if the lock's lease is lost (expired/revoked) while held. Never for a caller-provided lease. */
  lost: Promise<KvClientError>;
  /** Unlocks (and revokes the SDK's lease). Idempotent. */
  release(): Promise<void>;
}

/** Longest single Lock call; the SDK calls again (keeping its place) until opts.timeoutMs. */
const LOCK_CALL_MS = 30_000;

/** Joins the queue of `name` under `lease` and waits until first; shared by locks and elections. */
export async function acquireQueued(
  client: KvClient,
  service: 'Lock' | 'Election',
  name: Uint8Array,
  lease: number,
  value: Uint8Array | undefined,
  timeoutMs: number | undefined,
): Promise<{ key: Uint8Array; token: number }> {
  const until = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
  for (;;) {
    const left = until - Date.now();
    if (left <= 0) throw new KvClientError(StatusCode.DEADLINE_EXCEEDED, `gave up waiting for ${service === 'Lock' ? 'lock' : 'leadership of'} "${text(name)}"`);
    const callMs = Math.min(left, LOCK_CALL_MS);
    try {
      if (service === 'Lock') {
        const r = await client.invoke<{ key: Uint8Array; token: number }>('Lock', 'Lock', { name, lease }, 'blocking', callMs);
        return { key: r.key, token: Number(r.token) };
      }
      const r = await client.invoke<{ leader?: { key: Uint8Array; rev: number } | null }>('Election', 'Campaign', { name, lease, value: value ?? new Uint8Array(0) }, 'blocking', callMs);
      return { key: r.leader!.key, token: Number(r.leader!.rev) };
    } catch (e) {
      const err = e as KvClientError;
      // Still queued (the call is idempotent per lease): call again.
      if (err instanceof KvClientError && (err.code === StatusCode.DEADLINE_EXCEEDED || err.code === StatusCode.UNAVAILABLE)) continue;
      throw e;
    }
  }
}

export async function lockWith(client: KvClient, nameIn: Bytes, opts: LockOptions): Promise<LockHandle> {
  const name = toBytes(nameIn);
  if (name.length === 0) throw new KvClientError(StatusCode.INVALID_ARGUMENT, 'lock name must not be empty', { notSent: true });
  let lease = opts.lease;
  let keeper: LeaseKeepAlive | undefined;
  if (lease === undefined) {
    lease = (await client.lease.grant(opts.ttlSeconds ?? 10)).id;
    keeper = client.lease.keepAlive(lease);
  }
  const ownLease = keeper !== undefined;
  const dropLease = async () => {
    keeper?.close();
    if (ownLease) await client.lease.revoke(lease!).catch(() => undefined);
  };
  let got: { key: Uint8Array; token: number };
  try {
    got = await acquireQueued(client, 'Lock', name, lease, undefined, opts.timeoutMs);
  } catch (e) {
    await dropLease();
    throw e;
  }
  let released = false;
  return {
    name,
    key: got.key,
    token: got.token,
    lease,
    fence: { lock: name, token: got.token },
    lost: keeper ? keeper.lost : new Promise<KvClientError>(() => undefined),
    async release() {
      if (released) return;
      released = true;
      try {
        if (ownLease) await client.lease.revoke(lease!); // deletes the key too
        else await client.invoke('Lock', 'Unlock', { key: got.key }, 'keyed-write');
      } catch (e) {
        if (!(e instanceof KvClientError && e.code === StatusCode.NOT_FOUND)) throw e;
      } finally {
        keeper?.close();
      }
    },
  };
}
