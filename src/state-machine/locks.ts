// Locks and elections over plain keys, the way etcd's concurrency package lays them out, but
// with the fencing check inside the state machine:
//
//   lock / election `name`  ->  one key per contender: `<name>/<lease id, 16 hex digits>`,
//                               attached to the contender's lease
//   queue order             ->  create revision (= log order: a fair FIFO queue)
//   holder / leader         ->  the contender key with the LOWEST create revision
//   fencing token           ->  the holder key's create revision: every later holder's is
//                               larger, so tokens only grow
//
// Release = the key vanishes (Unlock deletes it, or its lease expires / is revoked): the next
// key in create-revision order is the holder at that same revision, on every replica.
// A write guarded by a Fence {lock, token} applies only while `lock` is held with exactly
// `token` (fenceHolds); a paused former holder's write is rejected as "stale fencing token".

import type { KeyRecord, PendingView } from './pending-view.js';

const enc = new TextEncoder();
const SLASH = 0x2f;

/** `<name>/<lease as 16 lowercase hex digits>`. */
export function contenderKey(name: Uint8Array, lease: number): Uint8Array {
  const suffix = enc.encode(`/${lease.toString(16).padStart(16, '0')}`);
  const k = new Uint8Array(name.length + suffix.length);
  k.set(name, 0);
  k.set(suffix, name.length);
  return k;
}

function contenderPrefix(name: Uint8Array): Uint8Array {
  const p = new Uint8Array(name.length + 1);
  p.set(name, 0);
  p[name.length] = SLASH;
  return p;
}

/** Every contender of `name` (keys `<name>/<16 hex>` only, so lock "a" ignores lock "a/b"), in queue order. */
export async function contenders(view: PendingView, name: Uint8Array): Promise<KeyRecord[]> {
  const out: KeyRecord[] = [];
  for (const key of await view.contenderKeys(contenderPrefix(name))) {
    const record = view.get(key);
    if (record) out.push({ key, record });
  }
  return out.sort((a, b) => a.record.createRevision - b.record.createRevision);
}

/** The current holder (leader) of `name`, or undefined when nobody holds it. */
export async function lockHolder(view: PendingView, name: Uint8Array): Promise<KeyRecord | undefined> {
  return (await contenders(view, name))[0];
}

/** True when lock `name` is held right now with fencing token `token`. */
export async function fenceHolds(view: PendingView, name: Uint8Array, token: number): Promise<boolean> {
  const h = await lockHolder(view, name);
  return h !== undefined && h.record.createRevision === token;
}
