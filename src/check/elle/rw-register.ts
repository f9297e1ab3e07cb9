// Read/write-register analysis (Elle's rw_register.clj). Reads return a single value, so the
// version order must be inferred: nil precedes every written value; optionally writes follow reads
// inside a txn, and per-key sequential (process order) or linearizable (real-time order) histories
// order the versions their txns touched. Version graphs yield ww and rw edges; wr edges come from
// matching a read to the unique write of that value.
import { addAnomaly, DependencyGraph, show, type AnomalyMap, type WorkloadAnalysis } from './analysis.js';
import { RW, WR, WW, type RelGraph } from './graph.js';
import { lostUpdateCases } from './list-append.js';
import { orderGraph } from './order.js';
import { canon, extReads, extWrites, intermediateWrites, type Mop, type Txn } from './txn.js';

const name = (t: Txn): string => `T${t.index}`;

export interface RegisterOptions {
  linearizableKeys?: boolean;
  sequentialKeys?: boolean;
  wfrKeys?: boolean;
}

/** key -> version -> later versions (canonical strings), plus the original values for text. */
class VersionGraphs {
  readonly edges = new Map<string, Map<string, Set<string>>>();
  readonly values = new Map<string, unknown>();

  link(k: string, v1: unknown, v2: unknown): void {
    const a = canon(v1);
    const b = canon(v2);
    if (a === b) return;
    this.values.set(a, v1);
    this.values.set(b, v2);
    const g = this.edges.get(k) ?? new Map<string, Set<string>>();
    this.edges.set(k, g);
    const out = g.get(a) ?? new Set<string>();
    g.set(a, out);
    out.add(b);
  }

  merge(other: VersionGraphs): VersionGraphs {
    const out = new VersionGraphs();
    for (const src of [this, other]) {
      for (const [k, g] of src.edges) for (const [a, bs] of g) for (const b of bs) out.link(k, src.values.get(a), src.values.get(b));
    }
    return out;
  }
}

function initialStateVersions(txns: readonly Txn[]): VersionGraphs {
  const vg = new VersionGraphs();
  for (const t of txns) {
    if (t.type === 'fail') continue;
    for (const m of extWrites(t).values()) if (m.value !== null) vg.link(m.k, null, m.value);
    if (t.type !== 'ok') continue;
    for (const m of extReads(t).values()) if (m.value !== null) vg.link(m.k, null, m.value);
  }
  return vg;
}

function wfrVersions(txns: readonly Txn[]): VersionGraphs {
  const vg = new VersionGraphs();
  for (const t of txns) {
    if (t.type !== 'ok') continue;
    const writes = extWrites(t);
    for (const r of extReads(t).values()) {
      const w = writes.get(r.k);
      if (r.value !== null && w) vg.link(r.k, r.value, w.value);
    }
  }
  return vg;
}

/** The version a txn leaves a key in (v1) and the version it first sees (v2); Elle's rules. */
function lastVersion(t: Txn, k: string): { has: boolean; value: unknown } {
  const w = extWrites(t).get(k);
  if (w) return { has: true, value: w.value };
  if (t.type !== 'ok') return { has: false, value: null };
  const r = extReads(t).get(k);
  return r ? { has: true, value: r.value } : { has: false, value: null };
}

function firstVersion(t: Txn, k: string): { has: boolean; value: unknown } {
  const r = t.type === 'ok' ? extReads(t).get(k) : undefined;
  if (r && r.value !== null) return { has: true, value: r.value };
  const w = extWrites(t).get(k);
  if (w) return { has: true, value: w.value };
  return r ? { has: true, value: null } : { has: false, value: null };
}

function extKeys(t: Txn): Set<string> {
  if (t.type === 'fail') return new Set();
  const keys = new Set(extWrites(t).keys());
  if (t.type === 'ok') for (const k of extReads(t).keys()) keys.add(k);
  return keys;
}

/**
 * If T1 precedes T2 in a per-key order (process or real-time) and both touch k, T1's version of k
 * precedes T2's. For each txn and key we need only the nearest later txns touching k: computed
 * once per txn in reverse order (the order graph is a DAG running forward in the history).
 */
function orderVersions(txns: readonly Txn[], order: RelGraph): VersionGraphs {
  const vg = new VersionGraphs();
  const keys = txns.map(extKeys);
  const downstream: Array<Map<string, Set<number>>> = txns.map(() => new Map());
  const byInvokeDesc = [...txns].sort((a, b) => b.invokePos - a.invokePos);
  for (const a of byInvokeDesc) {
    const down = downstream[a.id]!;
    for (const succ of order.out[a.id]!.keys()) {
      for (const [k, set] of downstream[succ]!) {
        if (keys[succ]!.has(k)) continue;
        const mine = down.get(k) ?? new Set<number>();
        down.set(k, mine);
        for (const x of set) mine.add(x);
      }
      for (const k of keys[succ]!) {
        const mine = down.get(k) ?? new Set<number>();
        down.set(k, mine);
        mine.add(succ);
      }
    }
    for (const k of keys[a.id]!) {
      const v1 = lastVersion(a, k);
      if (!v1.has) continue;
      for (const b of down.get(k) ?? []) {
        const v2 = firstVersion(txns[b]!, k);
        if (v2.has) vg.link(k, v1.value, v2.value);
      }
    }
  }
  return vg;
}

/** Cycles in any key's version graph (Tarjan on a tiny string graph). */
function versionCycles(vg: VersionGraphs): Array<{ k: string; versions: unknown[] }> {
  const out: Array<{ k: string; versions: unknown[] }> = [];
  for (const [k, g] of vg.edges) {
    const index = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const on = new Set<string>();
    const visit = (root: string): void => {
      const call: Array<{ v: string; it: Iterator<string> }> = [];
      const enter = (v: string): void => {
        index.set(v, index.size);
        low.set(v, index.get(v)!);
        stack.push(v);
        on.add(v);
        call.push({ v, it: (g.get(v) ?? new Set<string>()).values() });
      };
      enter(root);
      while (call.length > 0) {
        const frame = call[call.length - 1]!;
        const next = frame.it.next();
        if (!next.done) {
          const w = next.value;
          if (!index.has(w)) enter(w);
          else if (on.has(w)) low.set(frame.v, Math.min(low.get(frame.v)!, index.get(w)!));
          continue;
        }
        call.pop();
        if (call.length > 0) {
          const p = call[call.length - 1]!.v;
          low.set(p, Math.min(low.get(p)!, low.get(frame.v)!));
        }
        if (low.get(frame.v) === index.get(frame.v)) {
          const scc: string[] = [];
          let w: string;
          do {
            w = stack.pop()!;
            on.delete(w);
            scc.push(w);
          } while (w !== frame.v);
          if (scc.length > 1) out.push({ k, versions: scc.map((c) => vg.values.get(c)) });
        }
      }
    };
    for (const v of g.keys()) if (!index.has(v)) visit(v);
  }
  return out;
}

function versionGraphs(txns: readonly Txn[], opts: RegisterOptions, keyOf: Map<string, unknown>, anomalies: AnomalyMap): VersionGraphs {
  const sources: Array<[string, () => VersionGraphs]> = [['initial-state', () => initialStateVersions(txns)]];
  if (opts.wfrKeys) sources.push(['wfr-keys', () => wfrVersions(txns)]);
  if (opts.sequentialKeys) sources.push(['sequential-keys', () => orderVersions(txns, orderGraph(txns, 'process'))]);
  if (opts.linearizableKeys) sources.push(['linearizable-keys', () => orderVersions(txns, orderGraph(txns, 'realtime'))]);
  let graphs = new VersionGraphs();
  const used: string[] = [];
  for (const [source, build] of sources) {
    const merged = graphs.merge(build());
    const cycles = versionCycles(merged);
    if (cycles.length === 0) {
      graphs = merged;
      used.push(source);
      continue;
    }
    // A source that contradicts the others is reported and then left out, as Elle does.
    for (const c of cycles) {
      addAnomaly(anomalies, 'cyclic-versions', `key ${show(keyOf.get(c.k))}: versions ${c.versions.map((v) => show(v)).join(', ')} form a cycle in the version order inferred from ${[...used, source].join(', ')}`);
    }
  }
  return graphs;
}

type Index = Map<string, Txn[]>;

function indexBy(txns: readonly Txn[], pick: (t: Txn) => Map<string, Mop>): Index {
  const out: Index = new Map();
  for (const t of txns) {
    if (t.type !== 'ok') continue;
    for (const m of pick(t).values()) {
      const key = m.k + '\u0002' + canon(m.value);
      const list = out.get(key);
      if (list) list.push(t);
      else out.set(key, [t]);
    }
  }
  return out;
}

function buildGraph(txns: readonly Txn[], vg: VersionGraphs, keyOf: Map<string, unknown>, malformed: string[]): DependencyGraph {
  const deps = new DependencyGraph(txns.length);
  const reads = indexBy(txns, extReads);
  const writes = indexBy(txns, extWrites);
  for (const [key, writers] of writes) {
    if (writers.length > 1) malformed.push(`key and value ${key.replace('\u0002', ' = ')} written by more than one txn: ${writers.map(name).join(', ')}`);
  }
  for (const [key, readers] of reads) {
    const w = writes.get(key);
    if (!w || w.length !== 1) continue;
    const writer = w[0]!;
    for (const r of readers) {
      deps.link(writer.id, r.id, WR, (a, b) => `${a} wrote ${describeKv(key, keyOf, vg)}, which was read by ${b}`);
    }
  }
  for (const [k, g] of vg.edges) {
    for (const [v1, v2s] of g) {
      for (const v2 of v2s) {
        const w2 = writes.get(k + '\u0002' + v2) ?? [];
        if (w2.length === 0) continue;
        const kShow = show(keyOf.get(k));
        const v1Show = show(vg.values.get(v1));
        const v2Show = show(vg.values.get(v2));
        for (const a of writes.get(k + '\u0002' + v1) ?? []) for (const b of w2) {
          deps.link(a.id, b.id, WW, (x, y) => `${x} set key ${kShow} to ${v1Show}, and ${y} set it to ${v2Show}, which came later in the version order`);
        }
        for (const a of reads.get(k + '\u0002' + v1) ?? []) for (const b of w2) {
          deps.link(a.id, b.id, RW, (x, y) => `${x} read key ${kShow} = ${v1Show}, and ${y} set it to ${v2Show}, which came later in the version order`);
        }
      }
    }
  }
  return deps;
}

function describeKv(key: string, keyOf: Map<string, unknown>, vg: VersionGraphs): string {
  const [k, v] = key.split('\u0002') as [string, string];
  return `${show(keyOf.get(k))} = ${show(vg.values.get(v) ?? decodeCanon(v))}`;
}

function decodeCanon(c: string): unknown {
  if (c.startsWith('s')) return c.slice(1);
  if (c === 'nnull') return null;
  if (c.startsWith('n')) return Number(c.slice(1));
  return c.slice(1);
}

function internalCases(txns: readonly Txn[], out: AnomalyMap): void {
  for (const t of txns) {
    if (t.type !== 'ok') continue;
    const state = new Map<string, unknown>();
    for (const m of t.mops) {
      if (m.f === 'r' && state.has(m.k) && canon(state.get(m.k)) !== canon(m.value)) {
        addAnomaly(out, 'internal', `${name(t)} read key ${show(m.key)} = ${show(m.value)}, but its own earlier reads and writes imply ${show(state.get(m.k))} (internal inconsistency)`);
        break;
      }
      state.set(m.k, m.value);
    }
  }
}

function g1Cases(txns: readonly Txn[], out: AnomalyMap): void {
  const failed = new Map<string, Txn>();
  const im = new Map<string, Txn>();
  for (const t of txns) {
    if (t.type === 'fail') for (const m of t.mops) if (m.f === 'w') failed.set(m.k + '\u0002' + canon(m.value), t);
    for (const m of intermediateWrites(t)) im.set(m.k + '\u0002' + canon(m.value), t);
  }
  for (const t of txns) {
    if (t.type !== 'ok') continue;
    for (const m of t.mops) {
      if (m.f !== 'r') continue;
      const key = m.k + '\u0002' + canon(m.value);
      const f = failed.get(key);
      if (f) addAnomaly(out, 'G1a', `${name(t)} read key ${show(m.key)} = ${show(m.value)}, written by ${name(f)}, which failed (aborted read)`);
      const w = im.get(key);
      if (w && w !== t) addAnomaly(out, 'G1b', `${name(t)} read key ${show(m.key)} = ${show(m.value)}, an intermediate write of ${name(w)}, which later overwrote it (intermediate read)`);
    }
  }
}

export function analyzeRwRegister(txns: readonly Txn[], opts: RegisterOptions): WorkloadAnalysis {
  const anomalies: AnomalyMap = new Map();
  const malformed: string[] = [];
  const keyOf = new Map<string, unknown>();
  for (const t of txns) for (const m of t.mops) keyOf.set(m.k, m.key);
  internalCases(txns, anomalies);
  g1Cases(txns, anomalies);
  lostUpdateCases(txns, keyOf, anomalies);
  const vg = versionGraphs(txns, opts, keyOf, anomalies);
  const deps = buildGraph(txns, vg, keyOf, malformed);
  return { deps, anomalies, malformed };
}
