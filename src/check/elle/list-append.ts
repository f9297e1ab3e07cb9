// List-append analysis (Elle's list_append.clj): every read returns the whole list, so reads reveal
// the version order of appends. From the longest read of each key we derive ww/wr/rw edges, and we
// look for anomalies visible without cycles: aborted/intermediate reads, internal inconsistency,
// future reads, duplicates, incompatible orders, dirty updates, lost updates.
import { addAnomaly, DependencyGraph, show, type AnomalyMap, type WorkloadAnalysis } from './analysis.js';
import { RW, WR, WW } from './graph.js';
import { canon, intermediateWrites, type Mop, type Txn } from './txn.js';

/** Stands for "before the first append" (the initial empty list). */
const INIT = '\u0000init';

const name = (t: Txn): string => `T${t.index}`;

function readList(m: Mop): unknown[] {
  return Array.isArray(m.value) ? m.value : [];
}

/** Reads we trust: those of committed txns. :info reads are ignored (Elle ignores their nil reads). */
function okReads(txns: readonly Txn[]): Array<[Txn, Mop]> {
  const out: Array<[Txn, Mop]> = [];
  for (const t of txns) if (t.type === 'ok') for (const m of t.mops) if (m.f === 'r') out.push([t, m]);
  return out;
}

function validate(txns: readonly Txn[]): string[] {
  const problems: string[] = [];
  const appended = new Map<string, Set<string>>();
  for (const t of txns) {
    for (const m of t.mops) {
      if (m.f === 'r' && t.type === 'ok' && m.value !== null && !Array.isArray(m.value)) {
        problems.push(`${name(t)}: read of key ${show(m.key)} returned ${show(m.value)}, not a list`);
      }
      if (m.f !== 'append') continue;
      const seen = appended.get(m.k) ?? new Set<string>();
      appended.set(m.k, seen);
      const v = canon(m.value);
      if (seen.has(v)) problems.push(`duplicate-appends: value ${show(m.value)} appended to key ${show(m.key)} more than once`);
      seen.add(v);
    }
    if (problems.length >= 8) break;
  }
  return problems;
}

/**
 * key -> distinct observed lists, shortest first. A key that `appenders` append exactly once yields
 * [[v]] even without reads.
 */
function sortedValues(readers: readonly Txn[], appenders: readonly Txn[]): Map<string, unknown[][]> {
  const byKey = new Map<string, Map<string, unknown[]>>();
  for (const [, m] of okReads(readers)) {
    const list = readList(m);
    if (list.length === 0) continue;
    const lists = byKey.get(m.k) ?? new Map<string, unknown[]>();
    byKey.set(m.k, lists);
    lists.set(list.map(canon).join('\u0001'), list);
  }
  const singles = new Map<string, unknown | typeof TOO_MANY>();
  for (const t of appenders) for (const m of t.mops) {
    if (m.f === 'append') singles.set(m.k, singles.has(m.k) ? TOO_MANY : m.value);
  }
  // As in Elle (a `merge`), a key appended exactly once takes [[v]] in place of what reads showed.
  for (const [k, v] of singles) {
    if (v !== TOO_MANY) byKey.set(k, new Map([[canon(v), [v]]]));
  }
  const out = new Map<string, unknown[][]>();
  for (const [k, lists] of byKey) out.set(k, [...lists.values()].sort((a, b) => a.length - b.length));
  return out;
}
const TOO_MANY = Symbol('too-many');

function isPrefix(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length > b.length) return false;
  for (let i = 0; i < a.length; i++) if (canon(a[i]) !== canon(b[i])) return false;
  return true;
}

interface KeyOrder {
  values: unknown[];
  /** canon(element) -> position in the version order */
  indices: Map<string, number>;
}

/** The version order of each key: its longest observed list, de-duplicated. */
function appendIndex(sorted: Map<string, unknown[][]>): Map<string, KeyOrder> {
  const out = new Map<string, KeyOrder>();
  for (const [k, lists] of sorted) {
    const values: unknown[] = [];
    const indices = new Map<string, number>();
    for (const e of lists[lists.length - 1] ?? []) {
      const c = canon(e);
      if (indices.has(c)) continue;
      indices.set(c, values.length);
      values.push(e);
    }
    out.set(k, { values, indices });
  }
  return out;
}

function incompatibleOrders(sorted: Map<string, unknown[][]>, keyOf: Map<string, unknown>, out: AnomalyMap): void {
  for (const [k, lists] of sorted) {
    for (let i = 0; i + 1 < lists.length; i++) {
      if (!isPrefix(lists[i]!, lists[i + 1]!)) {
        addAnomaly(out, 'incompatible-order',
          `key ${show(keyOf.get(k))}: reads ${show(lists[i])} and ${show(lists[i + 1])} cannot both come from one order of appends`);
        break;
      }
    }
  }
}

function g1aCases(txns: readonly Txn[], out: AnomalyMap): void {
  const failed = new Map<string, Txn>();
  for (const t of txns) if (t.type === 'fail') for (const m of t.mops) {
    if (m.f === 'append') failed.set(m.k + '\u0002' + canon(m.value), t);
  }
  if (failed.size === 0) return;
  for (const [t, m] of okReads(txns)) {
    for (const e of readList(m)) {
      const w = failed.get(m.k + '\u0002' + canon(e));
      if (w) addAnomaly(out, 'G1a', `${name(t)} read key ${show(m.key)} = ${show(m.value)}, including ${show(e)}, appended by ${name(w)}, which failed (aborted read)`);
    }
  }
}

function g1bCases(txns: readonly Txn[], out: AnomalyMap): void {
  const im = new Map<string, Txn>();
  for (const t of txns) for (const m of intermediateWrites(t)) im.set(m.k + '\u0002' + canon(m.value), t);
  if (im.size === 0) return;
  for (const [t, m] of okReads(txns)) {
    const list = readList(m);
    if (list.length === 0) continue;
    const last = list[list.length - 1];
    const w = im.get(m.k + '\u0002' + canon(last));
    if (w && w !== t) addAnomaly(out, 'G1b', `${name(t)} read key ${show(m.key)} = ${show(m.value)}, ending in ${show(last)}, an intermediate append of ${name(w)} that it later followed with another append (intermediate read)`);
  }
}

/** A read inconsistent with the txn's own earlier reads and appends (Cerone's INT). */
function internalCase(t: Txn): string | undefined {
  // key -> expected state; `unknownPrefix` when we only know the txn's own appends at the end.
  const state = new Map<string, { unknownPrefix: boolean; list: unknown[] }>();
  for (const m of t.mops) {
    const s = state.get(m.k);
    if (m.f === 'append') {
      state.set(m.k, s ? { unknownPrefix: s.unknownPrefix, list: [...s.list, m.value] } : { unknownPrefix: true, list: [m.value] });
      continue;
    }
    const v = readList(m);
    if (s) {
      const consistent = s.unknownPrefix ? isPrefix(s.list, v.slice(v.length - s.list.length)) && v.length >= s.list.length : s.list.length === v.length && isPrefix(s.list, v);
      if (!consistent) {
        const expected = s.unknownPrefix ? `[... ${s.list.map((x) => show(x)).join(' ')}]` : show(s.list);
        return `${name(t)} read key ${show(m.key)} = ${show(m.value)}, but its own earlier reads and appends imply ${expected} (internal inconsistency)`;
      }
    }
    state.set(m.k, { unknownPrefix: false, list: v });
  }
  return undefined;
}

/** A read that observes an append the same txn performs only later. */
function futureReadCase(t: Txn): string | undefined {
  const read = new Set<string>();
  for (const m of t.mops) {
    if (m.f === 'r') {
      for (const e of readList(m)) read.add(m.k + '\u0002' + canon(e));
    } else if (read.has(m.k + '\u0002' + canon(m.value))) {
      return `${name(t)} read ${show(m.value)} in key ${show(m.key)} before it appended it (future read)`;
    }
  }
  return undefined;
}

function perTxnCases(txns: readonly Txn[], out: AnomalyMap): void {
  for (const t of txns) {
    if (t.type !== 'ok') continue;
    const internal = internalCase(t);
    if (internal) addAnomaly(out, 'internal', internal);
    const future = futureReadCase(t);
    if (future) addAnomaly(out, 'future-read', future);
  }
}

function duplicateCases(txns: readonly Txn[], out: AnomalyMap): void {
  for (const [t, m] of okReads(txns)) {
    const seen = new Set<string>();
    const dups = new Set<string>();
    for (const e of readList(m)) {
      const c = canon(e);
      if (seen.has(c)) dups.add(show(e));
      seen.add(c);
    }
    if (dups.size > 0) addAnomaly(out, 'duplicate-elements', `${name(t)} read key ${show(m.key)} = ${show(m.value)}, with ${[...dups].join(', ')} more than once`);
  }
}

/** An aborted append followed, in the version order, by a committed one. */
function dirtyUpdateCases(txns: readonly Txn[], keyOf: Map<string, unknown>, out: AnomalyMap): void {
  // Elle computes this over the whole history, invokes included, so no key is ever "appended once".
  const index = appendIndex(sortedValues(txns, []));
  const writer = new Map<string, Txn>();
  for (const t of txns) for (const m of t.mops) if (m.f === 'append') writer.set(m.k + '\u0002' + canon(m.value), t);
  for (const [k, order] of index) {
    let t1: Pick<Txn, 'type'> & Partial<Txn> = { type: 'ok' };
    let vs: unknown[] = [];
    for (const v of order.values) {
      const t2 = writer.get(k + '\u0002' + canon(v));
      if (!t2) continue; // garbage element: no txn appended it
      vs = [...vs, v];
      if (t1.type === 'fail' && t2.type === 'ok') {
        addAnomaly(out, 'dirty-update', `key ${show(keyOf.get(k))}: ${name(t1 as Txn)} failed, yet its append was followed by ${name(t2)}'s committed append (values ${show(vs)})`);
      }
      // Track the last definite txn: info txns neither reset nor extend the chain.
      if (t2.type === 'info') continue;
      if (t1.type === 'fail' && t2.type === 'fail') continue;
      t1 = t2;
      vs = [v];
    }
  }
}

/** Two committed txns read the same state of a key and both appended to it. */
export function lostUpdateCases(txns: readonly Txn[], keyOf: Map<string, unknown>, out: AnomalyMap): void {
  const groups = new Map<string, Txn[]>();
  for (const t of txns) {
    if (t.type !== 'ok') continue;
    const reads = new Map<string, unknown>();
    const written = new Set<string>();
    for (const m of t.mops) {
      if (m.f === 'r') {
        if (!reads.has(m.k)) reads.set(m.k, m.value);
      } else if (!written.has(m.k)) {
        written.add(m.k);
        if (reads.has(m.k)) {
          const g = m.k + '\u0002' + canon(reads.get(m.k));
          groups.set(g, [...(groups.get(g) ?? []), t]);
        }
      }
    }
  }
  for (const [g, ts] of groups) {
    if (ts.length < 2) continue;
    const k = g.slice(0, g.indexOf('\u0002'));
    addAnomaly(out, 'lost-update', `${ts.map(name).join(', ')} all read the same state of key ${show(keyOf.get(k))} and all wrote it (lost update)`);
  }
}

function buildGraph(txns: readonly Txn[], order: Map<string, KeyOrder>): DependencyGraph {
  const deps = new DependencyGraph(txns.length);
  const writeIndex = new Map<string, Txn>();
  const readIndex = new Map<string, Txn[]>();
  for (const t of txns) {
    if (t.type === 'fail') continue;
    for (const m of t.mops) {
      if (m.f === 'append') writeIndex.set(m.k + '\u0002' + canon(m.value), t);
      else if (t.type === 'ok') {
        const list = readList(m);
        const last = list.length === 0 ? INIT : canon(list[list.length - 1]);
        const rk = m.k + '\u0002' + last;
        readIndex.set(rk, [...(readIndex.get(rk) ?? []), t]);
      }
    }
  }
  for (const t of txns) {
    if (t.type === 'fail') continue;
    for (const m of t.mops) {
      if (m.f === 'r') addWr(deps, t, m, writeIndex);
      else addWwRw(deps, t, m, order.get(m.k), writeIndex, readIndex);
    }
  }
  return deps;
}

function addWr(deps: DependencyGraph, t: Txn, m: Mop, writeIndex: Map<string, Txn>): void {
  if (t.type !== 'ok') return;
  const list = readList(m);
  if (list.length === 0) return;
  const last = list[list.length - 1];
  const w = writeIndex.get(m.k + '\u0002' + canon(last));
  if (w && w !== t) deps.link(w.id, t.id, WR, (a, b) => `${b} observed ${a}'s append of ${show(last)} to key ${show(m.key)}`);
}

/** The element appended just before m.value; for an append nobody read, the last observed element. */
function previousElement(order: KeyOrder | undefined, m: Mop): { init: true } | { init: false; value: unknown } {
  if (!order) return { init: true };
  const i = order.indices.get(canon(m.value));
  if (i === undefined) return order.values.length === 0 ? { init: true } : { init: false, value: order.values[order.values.length - 1] };
  return i > 0 ? { init: false, value: order.values[i - 1] } : { init: true };
}

function addWwRw(deps: DependencyGraph, t: Txn, m: Mop, order: KeyOrder | undefined, writeIndex: Map<string, Txn>, readIndex: Map<string, Txn[]>): void {
  const prev = previousElement(order, m);
  if (!prev.init) {
    const w = writeIndex.get(m.k + '\u0002' + canon(prev.value));
    if (w && w !== t) deps.link(w.id, t.id, WW, (a, b) => `${b} appended ${show(m.value)} after ${a} appended ${show(prev.value)} to ${show(m.key)}`);
  }
  const readers = readIndex.get(m.k + '\u0002' + (prev.init ? INIT : canon(prev.value))) ?? [];
  for (const r of readers) {
    if (r === t) continue;
    deps.link(r.id, t.id, RW, prev.init
      ? (a, b) => `${a} observed the initial (nil) state of ${show(m.key)}, which ${b} created by appending ${show(m.value)}`
      : (a, b) => `${a} did not observe ${b}'s append of ${show(m.value)} to ${show(m.key)}`);
  }
}

export function analyzeListAppend(txns: readonly Txn[]): WorkloadAnalysis {
  const malformed = validate(txns);
  const anomalies: AnomalyMap = new Map();
  const keyOf = new Map<string, unknown>();
  for (const t of txns) for (const m of t.mops) keyOf.set(m.k, m.key);
  if (malformed.length > 0) return { deps: new DependencyGraph(txns.length), anomalies, malformed };
  g1aCases(txns, anomalies);
  g1bCases(txns, anomalies);
  perTxnCases(txns, anomalies);
  dirtyUpdateCases(txns, keyOf, anomalies);
  const possible = txns.filter((t) => t.type !== 'fail');
  duplicateCases(possible, anomalies);
  const sorted = sortedValues(possible, possible);
  incompatibleOrders(sorted, keyOf, anomalies);
  lostUpdateCases(txns, keyOf, anomalies);
  return { deps: buildGraph(txns, appendIndex(sorted)), anomalies, malformed };
}
