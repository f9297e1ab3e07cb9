// Cycle analysis over the dependency graph, per strongly connected component (Elle's txn.clj):
// first cheap "a cycle exists in subgraph S" proofs per consistency model, then a typed search for
// the shortest concrete cycle of each anomaly type, most severe first, skipping types already implied
// by a found cycle or ruled out by the existence proofs. The search is a BFS over (vertex, state)
// pairs, bounded by a work budget and a deadline; running out of either yields
// 'cycle-search-timeout' plus a fallback cycle, as in Elle.
import { allImpliedAnomalies, ANOMALY_DEPTH, anomaliesProhibitedBy, canonicalModel, friendlyModel, modelsImplying } from './consistency-model.js';
import { effectiveRel, isNontrivial, PROCESS, REALTIME, RW, tarjan, toAdjacency, WR, WW, type Adjacency, type RelGraph } from './graph.js';

export interface FoundCycle {
  type: string;
  /** Vertex ids in order; the edge from the last back to the first closes the cycle. */
  vertices: number[];
  /** rels[i] is the single relationship used from vertices[i] to vertices[i+1 mod n]. */
  rels: number[];
}

export interface CycleReport {
  cycles: FoundCycle[];
  /** '<model>-cycle-exists' types, one per model, with the smallest SCC size found. */
  cycleExists: Map<string, number>;
  timedOut: boolean;
}

// ---------- cycle existence ----------

interface ExistsSpec {
  model: string;
  type: string;
  /** Rels of A; with `rwExtension`, the subgraph is A ∪ (A ; rw) (Elle's sequential extension). */
  rels: number;
  rwExtension: boolean;
}

const EXISTS_SPECS: readonly ExistsSpec[] = ([
  ['PL-1', WW, false],
  ['PL-2', WW | WR, false],
  ['PL-SI', WW | WR, true],
  ['PL-2.99', WW | WR | RW, false],
  ['PL-3', WW | WR | RW, false],
  ['strong-session-PL-1', WW | PROCESS, false],
  ['strong-session-PL-2', WW | WR | PROCESS, false],
  ['strong-session-snapshot-isolation', WW | WR | PROCESS, true],
  ['strong-session-serializable', WW | WR | RW | PROCESS, false],
  ['strong-PL-1', WW | REALTIME, false],
  ['strong-PL-2', WW | WR | REALTIME, false],
  ['strong-snapshot-isolation', WW | WR | REALTIME, true],
  ['PL-SS', WW | WR | RW | REALTIME, false],
] as const).map(([model, rels, rwExtension]) => ({ model, type: `${model}-cycle-exists`, rels, rwExtension }));

/** Smallest nontrivial SCC size of the spec's subgraph restricted to `scc`, or 0 if acyclic. */
function smallestCycleScc(g: RelGraph, scc: readonly number[], member: Uint8Array, spec: ExistsSpec): number {
  if (!spec.rwExtension) {
    const adj = toAdjacency(g, (b) => b & spec.rels);
    const { comps } = tarjan(adj, scc, (v) => member[v] === 1);
    return minNontrivial(adj, comps);
  }
  // Product graph: vertex 2v = "arrived by rw (or start)", 2v+1 = "arrived by an A edge".
  // A edges go from either copy to the A copy; rw edges only leave the A copy, so rw edges are
  // never adjacent, matching cycles of A ∪ (A ; rw).
  const n = g.vertexCount;
  const targets: Int32Array[] = new Array(2 * n);
  const bits: Int32Array[] = new Array(2 * n);
  const empty = new Int32Array(0);
  for (let i = 0; i < 2 * n; i++) {
    targets[i] = empty;
    bits[i] = empty;
  }
  for (const u of scc) {
    const viaRw: number[] = [];
    const viaA: number[] = [];
    for (const [w, b] of g.out[u]!) {
      if (member[w] !== 1) continue;
      if (b & spec.rels) viaA.push(2 * w + 1);
      if (b & RW) viaRw.push(2 * w);
    }
    targets[2 * u] = Int32Array.from(viaA);
    targets[2 * u + 1] = Int32Array.from([...viaA, ...viaRw]);
    bits[2 * u] = new Int32Array(viaA.length).fill(1);
    bits[2 * u + 1] = new Int32Array(viaA.length + viaRw.length).fill(1);
  }
  const adj: Adjacency = { targets, bits };
  const starts = scc.flatMap((v) => [2 * v, 2 * v + 1]);
  const { comps } = tarjan(adj, starts);
  const sizes = comps.filter((c) => isNontrivial(adj, c)).map((c) => new Set(c.map((x) => x >> 1)).size);
  return sizes.length === 0 ? 0 : Math.min(...sizes);
}

function minNontrivial(adj: Adjacency, comps: number[][]): number {
  let best = 0;
  for (const c of comps) if (isNontrivial(adj, c) && (best === 0 || c.length < best)) best = c.length;
  return best;
}

function cycleExistsCases(g: RelGraph, scc: readonly number[], member: Uint8Array): Map<string, number> {
  const found = new Map<string, number>();
  const redundant = new Set<string>();
  for (const spec of EXISTS_SPECS) {
    if (redundant.has(spec.model)) continue;
    const size = smallestCycleScc(g, scc, member, spec);
    if (size === 0) continue;
    found.set(spec.type, size);
    for (const m of modelsImplying([spec.model])) redundant.add(m);
  }
  return found;
}

/** Cycle types that can't exist: those forbidden by a model whose subgraph is acyclic here. */
function impossibleCycleTypes(found: Map<string, number>): Set<string> {
  const impossible = modelsImplying(EXISTS_SPECS.filter((s) => found.has(s.type)).map((s) => s.model));
  const possible = EXISTS_SPECS.map((s) => s.model).filter((m) => !impossible.has(canonicalModel(m)));
  const prohibited = anomaliesProhibitedBy(possible);
  return new Set(SEARCH_SPECS.map((s) => s.type).filter((t) => prohibited.has(t)));
}

// ---------- typed cycle search ----------

type RwMode = 'none' | 'single' | 'nonadjacent' | 'adjacent';

interface SearchSpec {
  type: string;
  /** Rels usable as edges (by each edge's effective rel). */
  allowed: number;
  rwMode: RwMode;
  /** Each listed rel must occur at least once (at most two). */
  required: number[];
}

const BASE_SPECS: ReadonlyArray<Omit<SearchSpec, 'type'> & { type: string }> = [
  { type: 'G0', allowed: WW, rwMode: 'none', required: [] },
  { type: 'G1c', allowed: WW | WR, rwMode: 'none', required: [WR] },
  { type: 'G-single-item', allowed: WW | WR | RW, rwMode: 'single', required: [] },
  { type: 'G-nonadjacent-item', allowed: WW | WR | RW, rwMode: 'nonadjacent', required: [] },
  { type: 'G2-item', allowed: WW | WR | RW, rwMode: 'adjacent', required: [] },
];

export const SEARCH_SPECS: readonly SearchSpec[] = BASE_SPECS.flatMap((s) => [
  s,
  { type: `${s.type}-process`, allowed: s.allowed | PROCESS, rwMode: s.rwMode, required: [...s.required, PROCESS] },
  { type: `${s.type}-realtime`, allowed: s.allowed | REALTIME, rwMode: s.rwMode, required: [...s.required, REALTIME] },
]).sort((a, b) => (ANOMALY_DEPTH.get(a.type) ?? 0) - (ANOMALY_DEPTH.get(b.type) ?? 0) || (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));

/** Budget shared by one search: edge relaxations, and an absolute deadline. */
export interface Budget {
  relaxationsLeft: number;
  deadlineMs: number;
}

class OutOfBudget extends Error {}

/** After the first cycle of a type, how many more start vertices to try for a shorter one. */
const SHORTEN_STARTS_MAX = 64;
const SHORTEN_RELAXATIONS = 2_000_000;

const STATES_PER_VERTEX = 96; // rw count 3 x first-rw 2 x last-rw 2 x adjacent-rw 2 x required-seen 4

function spendAndCheck(budget: Budget, n: number): void {
  const before = budget.relaxationsLeft;
  budget.relaxationsLeft -= n;
  if (budget.relaxationsLeft < 0) throw new OutOfBudget();
  // Reading the clock is costly; look at it once per 4096 relaxations.
  if (before >> 12 !== budget.relaxationsLeft >> 12 && performance.now() > budget.deadlineMs) throw new OutOfBudget();
}

/** The cycle's type from the single rels of its edges, as Elle's cycle explainer classifies. */
export function classify(rels: readonly number[]): string {
  let rw = 0;
  let wr = 0;
  let ww = 0;
  let process = 0;
  let realtime = 0;
  let adjacent = false;
  rels.forEach((r, i) => {
    if (r === RW) rw++;
    else if (r === WR) wr++;
    else if (r === WW) ww++;
    else if (r === PROCESS) process++;
    else if (r === REALTIME) realtime++;
    if (r === RW && rels[(i + 1) % rels.length] === RW) adjacent = true;
  });
  const base = rw === 1 ? 'G-single-item' : rw > 1 ? (adjacent ? 'G2-item' : 'G-nonadjacent-item') : wr > 0 ? 'G1c' : ww > 0 ? 'G0' : 'G0';
  return base + (realtime > 0 ? '-realtime' : process > 0 ? '-process' : '');
}

interface SearchContext {
  g: RelGraph;
  spec: SearchSpec;
  /** Global vertex -> local index in the sub-SCC, or -1. */
  local: Int32Array;
  verts: number[];
  visitedStamp: Int32Array;
  parent: Int32Array;
  parentRel: Int8Array;
  stamp: number;
  budget: Budget;
}

function accept(spec: SearchSpec, c: number, f: number, l: number, a: number, q: number): boolean {
  if (q !== (1 << spec.required.length) - 1) return false;
  switch (spec.rwMode) {
    case 'none': return c === 0;
    case 'single': return c === 1;
    case 'nonadjacent': return c === 2 && a === 0 && !(l === 1 && f === 1);
    case 'adjacent': return c === 2 && (a === 1 || (l === 1 && f === 1));
  }
}

/** BFS for the shortest simple cycle through `start` meeting the spec; undefined if none. */
function searchFrom(ctx: SearchContext, start: number): FoundCycle | undefined {
  const { spec, local, g } = ctx;
  ctx.stamp++;
  const queue: number[] = [];
  const startState = -1;
  const visit = (state: number, from: number, rel: number): void => {
    ctx.visitedStamp[state] = ctx.stamp;
    ctx.parent[state] = from;
    ctx.parentRel[state] = rel;
    queue.push(state);
  };
  const expand = (u: number, c: number, f: number, l: number, a: number, q: number, fromState: number, first: boolean): FoundCycle | undefined => {
    const out = g.out[u]!;
    spendAndCheck(ctx.budget, out.size);
    for (const [w, bits] of out) {
      const lw = local[w]!;
      if (lw < 0) continue;
      const rel = effectiveRel(bits);
      if ((rel & spec.allowed) === 0) continue;
      const isRw = rel === RW ? 1 : 0;
      if (spec.rwMode === 'single' && c + isRw > 1) continue;
      if (spec.rwMode === 'nonadjacent' && isRw && l) continue;
      const c2 = Math.min(2, c + isRw);
      const f2 = first ? isRw : f;
      const a2 = a | (isRw & l);
      let q2 = q;
      spec.required.forEach((r, i) => { if (rel === r) q2 |= 1 << i; });
      if (w === start) {
        if (accept(spec, c2, f2, isRw, a2, q2)) {
          const cycle = reconstruct(ctx, fromState, start, rel);
          if (cycle) return cycle;
        }
        continue;
      }
      const state = lw * STATES_PER_VERTEX + ((((c2 * 2 + f2) * 2 + isRw) * 2 + a2) * 4 + q2);
      if (ctx.visitedStamp[state] === ctx.stamp) continue;
      visit(state, fromState, rel);
    }
    return undefined;
  };
  const first = expand(start, 0, 0, 0, 0, 0, startState, true);
  if (first) return first;
  for (let i = 0; i < queue.length; i++) {
    const s = queue[i]!;
    const lw = Math.floor(s / STATES_PER_VERTEX);
    let rest = s % STATES_PER_VERTEX;
    const q = rest & 3; rest >>= 2;
    const a = rest & 1; rest >>= 1;
    const l = rest & 1; rest >>= 1;
    const f = rest & 1; rest >>= 1;
    const c = rest;
    const found = expand(ctx.verts[lw]!, c, f, l, a, q, s, false);
    if (found) return found;
  }
  return undefined;
}

function reconstruct(ctx: SearchContext, lastState: number, start: number, closingRel: number): FoundCycle | undefined {
  const vertices: number[] = [];
  const rels: number[] = [closingRel];
  for (let s = lastState; s !== -1; s = ctx.parent[s]!) {
    vertices.push(ctx.verts[Math.floor(s / STATES_PER_VERTEX)]!);
    rels.push(ctx.parentRel[s]!);
  }
  vertices.push(start);
  vertices.reverse();
  rels.reverse();
  // rels now: [rel into vertices[1], ..., closing]; i.e. rels[i] is vertices[i] -> vertices[i+1].
  if (new Set(vertices).size !== vertices.length) return undefined; // walk revisits a vertex: not a simple cycle
  return { type: ctx.spec.type, vertices, rels };
}

/** Vertices at the tail of an edge with the rarest required rel: every matching cycle has one. */
function startVertices(g: RelGraph, verts: readonly number[], local: Int32Array, spec: SearchSpec): number[] {
  const needed = spec.rwMode !== 'none' ? RW : spec.required[0];
  if (needed === undefined) return [...verts];
  return verts.filter((u) => {
    for (const [w, bits] of g.out[u]!) if (local[w]! >= 0 && effectiveRel(bits) === needed) return true;
    return false;
  });
}

function searchType(g: RelGraph, scc: readonly number[], member: Uint8Array, spec: SearchSpec, budget: Budget): FoundCycle | undefined {
  const adj = toAdjacency(g, (b) => (effectiveRel(b) & spec.allowed ? b : 0));
  const { comps } = tarjan(adj, scc, (v) => member[v] === 1);
  const local = new Int32Array(g.vertexCount).fill(-1);
  for (const c of comps) {
    if (!isNontrivial(adj, c)) continue;
    c.forEach((v, i) => { local[v] = i; });
    const size = c.length * STATES_PER_VERTEX;
    const ctx: SearchContext = {
      g, spec, local, verts: c, budget, stamp: 0,
      visitedStamp: new Int32Array(size), parent: new Int32Array(size), parentRel: new Int8Array(size),
    };
    let best: FoundCycle | undefined;
    let extraStarts = 0;
    for (const s of startVertices(g, c, local, spec)) {
      if (best) {
        // Once a cycle is known, a few more starts (on a small budget) usually find a shorter one,
        // which is far easier to read; the verdict doesn't depend on it.
        if (++extraStarts > SHORTEN_STARTS_MAX || best.vertices.length <= 2) break;
        ctx.budget = { relaxationsLeft: SHORTEN_RELAXATIONS, deadlineMs: budget.deadlineMs };
        try {
          const shorter = searchFrom(ctx, s);
          if (shorter && shorter.vertices.length < best.vertices.length) best = shorter;
        } catch (e) {
          if (e instanceof OutOfBudget) break;
          throw e;
        }
        continue;
      }
      best = searchFrom(ctx, s);
    }
    if (best) return best;
    for (const v of c) local[v] = -1;
  }
  return undefined;
}

/** Any shortest cycle through some vertex of the SCC, using every edge (the timeout fallback). */
function fallbackCycle(g: RelGraph, scc: readonly number[], member: Uint8Array): FoundCycle {
  const start = scc[0]!;
  const prev = new Map<number, number>([[start, -1]]);
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const u = queue[i]!;
    for (const w of g.out[u]!.keys()) {
      if (member[w] !== 1) continue;
      if (w === start) {
        const vertices: number[] = [];
        for (let x = u; x !== -1; x = prev.get(x)!) vertices.push(x);
        vertices.reverse();
        const rels = vertices.map((v, j) => effectiveRel(g.rels(v, vertices[(j + 1) % vertices.length]!)));
        return { type: classify(rels), vertices, rels };
      }
      if (!prev.has(w)) {
        prev.set(w, u);
        queue.push(w);
      }
    }
  }
  throw new Error('fallbackCycle: SCC has no cycle through its first vertex');
}

function analyseScc(g: RelGraph, scc: readonly number[], member: Uint8Array, budgetFor: () => Budget, report: CycleReport): void {
  const exists = cycleExistsCases(g, scc, member);
  for (const [type, size] of exists) {
    const prev = report.cycleExists.get(type);
    if (prev === undefined || size < prev) report.cycleExists.set(type, size);
  }
  const impossible = impossibleCycleTypes(exists);
  const redundant = new Set<string>();
  let foundAny = false;
  let timedOut = false;
  for (const spec of SEARCH_SPECS) {
    if (impossible.has(spec.type) || redundant.has(spec.type)) continue;
    let cycle: FoundCycle | undefined;
    try {
      cycle = searchType(g, scc, member, spec, budgetFor());
    } catch (e) {
      if (!(e instanceof OutOfBudget)) throw e;
      timedOut = true;
      continue;
    }
    if (!cycle) continue;
    foundAny = true;
    report.cycles.push(cycle);
    for (const t of allImpliedAnomalies([spec.type])) redundant.add(t);
  }
  if (timedOut) {
    report.timedOut = true;
    if (!foundAny) report.cycles.push(fallbackCycle(g, scc, member));
  }
}

export interface CycleSearchOptions {
  deadlineMs: number;
  /** Edge relaxations allowed per (SCC, anomaly type) search. */
  relaxationsPerSearch: number;
}

export function findCycles(g: RelGraph, opts: CycleSearchOptions): CycleReport {
  const report: CycleReport = { cycles: [], cycleExists: new Map(), timedOut: false };
  const all = toAdjacency(g, (b) => b);
  const vertices = Array.from({ length: g.vertexCount }, (_, i) => i);
  const { comps } = tarjan(all, vertices);
  const member = new Uint8Array(g.vertexCount);
  for (const scc of comps) {
    if (!isNontrivial(all, scc)) continue;
    for (const v of scc) member[v] = 1;
    analyseScc(g, scc, member, () => ({ relaxationsLeft: opts.relaxationsPerSearch, deadlineMs: opts.deadlineMs }), report);
    for (const v of scc) member[v] = 0;
  }
  return report;
}

export { friendlyModel };
