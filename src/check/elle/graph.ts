// A directed graph over transaction ids whose edges carry a bit set of relationships, plus an
// iterative Tarjan SCC (no recursion: histories have 10^5 txns and the call stack would overflow).
import type { RelName } from './types.js';

export const WW = 1;
export const WR = 2;
export const RW = 4;
export const PROCESS = 8;
export const REALTIME = 16;
export const DATA_RELS = WW | WR | RW;

export const REL_NAMES: ReadonlyArray<[number, RelName]> = [
  [WW, 'ww'], [WR, 'wr'], [RW, 'rw'], [PROCESS, 'process'], [REALTIME, 'realtime'],
];

/**
 * The one relationship an edge is explained by. Elle explains a pair of txns with the first
 * explainer that succeeds (data dependencies before process before real-time), and classifies
 * cycles by those explanations; cycle search uses the same single rel so types agree.
 */
export function effectiveRel(bits: number): number {
  for (const [bit] of REL_NAMES) if (bits & bit) return bit;
  return 0;
}

export function relName(bit: number): RelName {
  for (const [b, name] of REL_NAMES) if (b === bit) return name;
  throw new Error(`not a single relationship bit: ${bit}`);
}

export class RelGraph {
  /** out[u]: target -> rel bits. */
  readonly out: Map<number, number>[];

  constructor(readonly vertexCount: number) {
    this.out = Array.from({ length: vertexCount }, () => new Map<number, number>());
  }

  link(u: number, v: number, rel: number): void {
    if (u === v) return; // Elle's graphs have no self-edges
    const m = this.out[u]!;
    m.set(v, (m.get(v) ?? 0) | rel);
  }

  rels(u: number, v: number): number {
    return this.out[u]!.get(v) ?? 0;
  }

  edgeCount(): number {
    let n = 0;
    for (const m of this.out) n += m.size;
    return n;
  }
}

/** Adjacency lists for fast traversal: per vertex, targets and their bits. */
export interface Adjacency {
  targets: Int32Array[];
  bits: Int32Array[];
}

export function toAdjacency(g: RelGraph, keep: (bits: number) => number): Adjacency {
  const targets: Int32Array[] = [];
  const bits: Int32Array[] = [];
  for (const m of g.out) {
    const ts: number[] = [];
    const bs: number[] = [];
    for (const [v, b] of m) {
      const kept = keep(b);
      if (kept) {
        ts.push(v);
        bs.push(kept);
      }
    }
    targets.push(Int32Array.from(ts));
    bits.push(Int32Array.from(bs));
  }
  return { targets, bits };
}

/**
 * Tarjan's SCC algorithm, iterative. `inSet` restricts the walk to some vertices (undefined = all).
 * Returns comp[v] (-1 if v not visited) and the components in reverse topological order
 * (if C1 -> C2 then C2 gets the smaller component number).
 */
export function tarjan(adj: Adjacency, vertices: Iterable<number>, inSet?: (v: number) => boolean): { comp: Int32Array; comps: number[][] } {
  const n = adj.targets.length;
  const index = new Int32Array(n).fill(-1);
  const low = new Int32Array(n);
  const comp = new Int32Array(n).fill(-1);
  const onStack = new Uint8Array(n);
  const stack: number[] = [];
  const comps: number[][] = [];
  const callV: number[] = [];
  const callI: number[] = [];
  let counter = 0;
  for (const root of vertices) {
    if (index[root] !== -1) continue;
    callV.push(root);
    callI.push(0);
    index[root] = low[root] = counter++;
    stack.push(root);
    onStack[root] = 1;
    while (callV.length > 0) {
      const top = callV.length - 1;
      const v = callV[top]!;
      const ts = adj.targets[v]!;
      let i = callI[top]!;
      let descended = false;
      while (i < ts.length) {
        const w = ts[i++]!;
        if (inSet && !inSet(w)) continue;
        if (index[w] === -1) {
          callI[top] = i;
          index[w] = low[w] = counter++;
          stack.push(w);
          onStack[w] = 1;
          callV.push(w);
          callI.push(0);
          descended = true;
          break;
        } else if (onStack[w]) {
          low[v] = Math.min(low[v]!, index[w]!);
        }
      }
      if (descended) continue;
      if (low[v] === index[v]) {
        const c: number[] = [];
        let w: number;
        do {
          w = stack.pop()!;
          onStack[w] = 0;
          comp[w] = comps.length;
          c.push(w);
        } while (w !== v);
        comps.push(c);
      }
      callV.pop();
      callI.pop();
      if (callV.length > 0) {
        const parent = callV[callV.length - 1]!;
        low[parent] = Math.min(low[parent]!, low[v]!);
      }
    }
  }
  return { comp, comps };
}

/** Does this component contain a cycle (2+ vertices, or a vertex with a self-edge)? */
export function isNontrivial(adj: Adjacency, c: readonly number[]): boolean {
  if (c.length > 1) return true;
  const v = c[0]!;
  return adj.targets[v]!.includes(v);
}
