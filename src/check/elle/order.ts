// Real-time and process order between transactions, as edges in a RelGraph.
import { PROCESS, REALTIME, RelGraph } from './graph.js';
import type { Txn } from './txn.js';

interface Event {
  pos: number;
  txn: Txn;
  kind: 'invoke' | 'complete';
}

function eventsInOrder(txns: readonly Txn[]): Event[] {
  const events: Event[] = [];
  for (const t of txns) {
    events.push({ pos: t.invokePos, txn: t, kind: 'invoke' });
    if (Number.isFinite(t.completePos)) events.push({ pos: t.completePos, txn: t, kind: 'complete' });
  }
  // Completions sort after an invoke at the same position (a completion without an invoke).
  events.sort((a, b) => a.pos - b.pos || (a.kind === b.kind ? 0 : a.kind === 'invoke' ? -1 : 1));
  return events;
}

/**
 * a -> b when a completed (ok) before b was invoked. Only a transitive reduction is kept, as Elle
 * does: a buffer of completed txns is linked to each new invoke, and a completion evicts buffered
 * txns that already precede it (their order to later txns follows through it).
 */
export function addRealtimeEdges(g: RelGraph, txns: readonly Txn[]): void {
  const buffer = new Set<number>();
  const preds = new Map<number, number[]>();
  for (const e of eventsInOrder(txns)) {
    if (e.kind === 'invoke') {
      if (buffer.size === 0) continue;
      const ps = [...buffer];
      preds.set(e.txn.id, ps);
      for (const p of ps) g.link(p, e.txn.id, REALTIME);
    } else if (e.txn.type === 'ok') {
      for (const p of preds.get(e.txn.id) ?? []) buffer.delete(p);
      preds.delete(e.txn.id);
      buffer.add(e.txn.id);
    }
  }
}

/** a -> b when one process completed a (ok) and then its next ok txn b. */
export function addProcessEdges(g: RelGraph, txns: readonly Txn[]): void {
  const last = new Map<number | string, number>();
  const ordered = txns.filter((t) => t.type === 'ok').sort((a, b) => a.completePos - b.completePos);
  for (const t of ordered) {
    const prev = last.get(t.process);
    if (prev !== undefined) g.link(prev, t.id, PROCESS);
    last.set(t.process, t.id);
  }
}

/** The real-time or process order alone (used to infer register versions). */
export function orderGraph(txns: readonly Txn[], kind: 'realtime' | 'process'): RelGraph {
  const g = new RelGraph(txns.length);
  if (kind === 'realtime') addRealtimeEdges(g, txns);
  else addProcessEdges(g, txns);
  return g;
}
