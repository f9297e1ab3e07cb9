// The leader's lease clock. The replicated state knows which leases exist and their granted
// TTL, never when they run out: deadlines are kept HERE, in the leader's memory, on the
// monotonic clock (performance.now()), and an expiry is a LeaseExpire command proposed
// through the log, so every replica deletes the lease's keys at the same revision.
//
// Keepalives refresh the deadline in memory only (like etcd's lessor): no log entry, no
// fsync per keepalive. Nothing needs persisting, because of the failover rule:
//
//   A NEW LEADER restarts every lease's countdown at its full TTL, from the moment it becomes
//   active. Leases can only live longer across a failover, never shorter: a client that kept
//   its lease alive on the old leader is never expired early by the new one.
//
// Activation: a new leader starts counting (and answering keepalives) only once it has
// applied an entry of its own term (the no-op every leader appends on election). Everything
// earlier leaders committed, including any LeaseExpire or Revoke they proposed, is then
// already applied here, so a keepalive we accept is never undone by a stale expiry from an
// older term: an older leader's entries not committed by then can never commit any more (they
// conflict with our own term's entry, which a quorum holds).
//
// A keepalive that arrives after the deadline passed is refused (NOT_FOUND: expired), even
// while the LeaseExpire is still on its way through the log: the expiry decision is final.

import { encodeCommand } from '../wire/kv-proto.js';
import { notFound, unavailableNotApplied } from './errors.js';
import type { NodeHost } from './node-host.js';

export interface LeaseKeeperOptions {
  /** How often deadlines are checked. Default: the host's tick interval. */
  checkIntervalMs?: number;
  /** Monotonic clock in ms (tests). Default performance.now. */
  now?: () => number;
}

export class LeaseKeeper {
  /** lease id -> deadline (monotonic ms). Only meaningful while active. */
  private readonly deadlines = new Map<number, number>();
  /** Expiries proposed and not settled yet. */
  private readonly expiring = new Set<number>();
  /** The term we are active (counting) in; 0 = inactive. */
  private activeTerm = 0;
  private seenEpoch = -1;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private readonly intervalMs: number;
  /** LeaseExpire proposals made (tests, diagnostics). */
  expiriesProposed = 0;

  constructor(
    private readonly host: NodeHost,
    opts: LeaseKeeperOptions = {},
  ) {
    this.now = opts.now ?? (() => performance.now());
    this.intervalMs = opts.checkIntervalMs ?? host.cfg.tickIntervalMs;
  }

  start(): void {
    this.timer ??= setInterval(() => this.check(), this.intervalMs);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.deactivate();
  }

  /** True when this node is the leader and counts lease deadlines (see the activation rule). */
  isActive(): boolean {
    const h = this.host;
    if (!h.isLeader()) {
      if (this.activeTerm !== 0) this.deactivate();
      return false;
    }
    const term = h.rawNode.raft.term;
    if (this.activeTerm === term) return true;
    if (this.activeTerm !== 0) this.deactivate();
    if (h.sm.appliedTerm() !== term) return false;
    this.activeTerm = term;
    return true;
  }

  private deactivate(): void {
    this.activeTerm = 0;
    this.deadlines.clear();
    this.expiring.clear();
    this.seenEpoch = -1;
  }

  /** Deadlines for leases granted since the last look (full TTL from now); drops gone ones. */
  private reconcile(now: number): void {
    const leases = this.host.sm.leases;
    if (leases.epoch === this.seenEpoch) return;
    this.seenEpoch = leases.epoch;
    const live = new Set<number>();
    for (const l of leases.list()) {
      live.add(l.id);
      if (!this.deadlines.has(l.id)) this.deadlines.set(l.id, now + l.ttl * 1000);
    }
    for (const id of this.deadlines.keys()) if (!live.has(id)) this.deadlines.delete(id);
  }

  /** One pass: propose LeaseExpire for every lease past its deadline. */
  check(): void {
    if (!this.isActive()) return;
    const now = this.now();
    this.reconcile(now);
    for (const [id, deadline] of this.deadlines) {
      if (deadline > now || this.expiring.has(id)) continue;
      this.proposeExpire(id);
    }
  }

  private proposeExpire(id: number): void {
    this.expiring.add(id);
    this.expiriesProposed++;
    const term = this.activeTerm;
    this.host
      .propose(encodeCommand({ leaseExpire: { id } }), this.host.cfg.defaultRequestTimeoutMs)
      .catch(() => undefined) // not leader any more, or timed out: the next pass (or leader) retries
      .finally(() => {
        if (this.activeTerm === term) this.expiring.delete(id);
      });
  }

  private requireActive(): void {
    if (!this.isActive()) {
      const why = this.host.isLeader() ? 'the new leader has not applied an entry of its term yet' : 'not the leader';
      throw unavailableNotApplied(`lease keepalives and TTLs are served by the leader (${why})`, this.host.leaderHint());
    }
  }

  /** Restarts `id`'s countdown at its full TTL; returns the TTL. NOT_FOUND if unknown or already expired. */
  keepAlive(id: number): number {
    this.requireActive();
    const now = this.now();
    this.reconcile(now);
    const ttl = this.host.sm.leases.ttlOf(id);
    if (ttl === undefined) throw notFound(`lease ${id} not found`);
    const deadline = this.deadlines.get(id);
    if (this.expiring.has(id) || (deadline !== undefined && deadline <= now)) throw notFound(`lease ${id} expired`);
    this.deadlines.set(id, now + ttl * 1000);
    return ttl;
  }

  /** Milliseconds left on `id` by the leader's clock (0 when expiring); NOT_FOUND if unknown. */
  remainingMs(id: number): number {
    this.requireActive();
    const now = this.now();
    this.reconcile(now);
    const ttl = this.host.sm.leases.ttlOf(id);
    if (ttl === undefined) throw notFound(`lease ${id} not found`);
    const deadline = this.deadlines.get(id) ?? now + ttl * 1000;
    return Math.max(0, deadline - now);
  }
}
