// bank: transfers between accounts in transactions; reads of every account at once. A transfer
// reads both balances at the worker's node, refuses (a definite `fail`) when the source would go
// negative, then commits one Txn comparing both accounts' mod_revision and putting both new
// balances. A read is one Range over the accounts' prefix (one atomic snapshot). The check:
// every ok read sees every account, no negative balance, and the total it started with.

import type { KvClient } from '../../../../src/client/index.js';
import type { Completion, HistoryEvent } from '../history.js';
import type { Rng } from '../rng.js';
import { bytes, readErrorOutcome, readOpts, str, writeErrorOutcome, type CheckResult, type ExecContext, type OpSpec, type Workload } from '../workload.js';

const PREFIX = 'bank/';
/** Most anomalies listed in the explanation. */
const MAX_EXPLAINED = 10;

export interface BankOptions {
  accounts?: number;
  /** Initial balance of each account. */
  initialBalance?: number;
  maxTransfer?: number;
}

interface KvRaw {
  key: Uint8Array;
  value: Uint8Array;
  modRevision: number | string;
}

export class BankWorkload implements Workload {
  readonly name = 'bank';
  readonly accounts: string[];
  readonly total: number;
  private readonly initialBalance: number;
  private readonly maxTransfer: number;

  constructor(opts: BankOptions = {}) {
    const n = opts.accounts ?? 5;
    this.initialBalance = opts.initialBalance ?? 20;
    this.maxTransfer = opts.maxTransfer ?? 5;
    this.accounts = Array.from({ length: n }, (_, i) => `a${i}`);
    this.total = n * this.initialBalance;
  }

  async setup(writer: KvClient): Promise<void> {
    const r = await writer.txn(
      {
        compare: this.accounts.map((a) => ({ key: PREFIX + a, version: 0 })),
        success: this.accounts.map((a) => ({ put: { key: PREFIX + a, value: String(this.initialBalance) } })),
      },
      { timeoutMs: 10_000 },
    );
    if (!r.succeeded) throw new Error('bank: accounts already exist (the cluster is not fresh)');
  }

  generate(rng: Rng): OpSpec {
    if (rng.next() < 0.5) return { f: 'read', value: null };
    const from = rng.pick(this.accounts);
    const to = rng.pick(this.accounts.filter((a) => a !== from));
    return { f: 'transfer', value: { from, to, amount: rng.int(1, this.maxTransfer) } };
  }

  private async readAll(ctx: ExecContext): Promise<{ ok: true; kvs: KvRaw[] } | { ok: false; c: Completion }> {
    const r = await ctx.callNode<{ kvs?: KvRaw[] }>('Range', { key: bytes(PREFIX), rangeEnd: bytes(PREFIX.slice(0, -1) + String.fromCharCode(PREFIX.charCodeAt(PREFIX.length - 1) + 1)), read: readOpts(ctx.consistency) });
    return r.ok ? { ok: true, kvs: r.value.kvs ?? [] } : { ok: false, c: readErrorOutcome(r.error) };
  }

  async execute(ctx: ExecContext, op: OpSpec): Promise<Completion> {
    const read = await this.readAll(ctx);
    if (!read.ok) return { ...read.c, value: op.value };
    const balances: Record<string, number> = {};
    const revs: Record<string, number> = {};
    for (const kv of read.kvs) {
      const a = str(kv.key)!.slice(PREFIX.length);
      balances[a] = Number(str(kv.value));
      revs[a] = Number(kv.modRevision);
    }
    if (op.f === 'read') return { type: 'ok', value: balances, node: ctx.node.id };
    const { from, to, amount } = op.value as { from: string; to: string; amount: number };
    const fromBalance = balances[from];
    const toBalance = balances[to];
    if (fromBalance === undefined || toBalance === undefined) return { type: 'fail', value: op.value, error: `account missing in read: ${JSON.stringify(balances)}` };
    if (fromBalance - amount < 0) return { type: 'fail', value: op.value, error: 'insufficient funds' };
    try {
      const t = await ctx.writer.txn(
        {
          compare: [
            { key: PREFIX + from, modRevision: revs[from]! },
            { key: PREFIX + to, modRevision: revs[to]! },
          ],
          success: [{ put: { key: PREFIX + from, value: String(fromBalance - amount) } }, { put: { key: PREFIX + to, value: String(toBalance + amount) } }],
        },
        { timeoutMs: ctx.opTimeoutMs },
      );
      return t.succeeded ? { type: 'ok', value: op.value, node: ctx.node.id } : { type: 'fail', value: op.value, error: 'conflict: an account changed since the read' };
    } catch (e) {
      return { ...writeErrorOutcome(e), value: op.value };
    }
  }

  finalOps(): OpSpec[] {
    return [{ f: 'read', value: null }];
  }

  check(events: HistoryEvent[]): CheckResult[] {
    const start = performance.now();
    const problems: string[] = [];
    let reads = 0;
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      if (e.type !== 'ok' || e.f !== 'read') continue;
      reads++;
      const balances = e.value as Record<string, number>;
      const where = `read at history line ${i + 1} (process ${e.process}, t=${(e.time / 1e9).toFixed(3)} s${e.node ? `, node ${e.node}` : ''})`;
      const missing = this.accounts.filter((a) => !(a in balances));
      if (missing.length) problems.push(`${where}: accounts missing: ${missing.join(', ')}`);
      const negative = Object.entries(balances).filter(([, v]) => v < 0);
      if (negative.length) problems.push(`${where}: negative balance: ${negative.map(([a, v]) => `${a}=${v}`).join(', ')}`);
      const sum = Object.values(balances).reduce((s, v) => s + v, 0);
      if (sum !== this.total) problems.push(`${where}: total ${sum}, expected ${this.total}: ${JSON.stringify(balances)}`);
    }
    const noReads = reads === 0;
    const explanations = noReads ? ['no read succeeded: nothing to judge'] : problems.slice(0, MAX_EXPLAINED);
    if (problems.length > MAX_EXPLAINED) explanations.push(`... and ${problems.length - MAX_EXPLAINED} more`);
    return [
      {
        name: 'bank (totals conserved, no negative balance)',
        valid: noReads ? 'unknown' : problems.length === 0,
        explanations,
        elapsedMs: performance.now() - start,
        details: { reads, anomalies: problems.length, total: this.total },
      },
    ];
  }
}
