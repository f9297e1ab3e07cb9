// What a workload analyser (list-append, rw-register) hands to the cycle search.
import { RelGraph } from './graph.js';

/** Renders why a -> b, given display names for a and b. */
export type EdgeText = (aName: string, bName: string) => string;

export class DependencyGraph {
  readonly graph: RelGraph;
  /** Why each (u, v, rel) edge exists; the first reason found is kept. */
  private readonly reasons = new Map<string, EdgeText>();

  constructor(vertexCount: number) {
    this.graph = new RelGraph(vertexCount);
  }

  link(u: number, v: number, rel: number, why: EdgeText): void {
    if (u === v) return;
    this.graph.link(u, v, rel);
    const key = `${u}>${v}>${rel}`;
    if (!this.reasons.has(key)) this.reasons.set(key, why);
  }

  reason(u: number, v: number, rel: number): EdgeText | undefined {
    return this.reasons.get(`${u}>${v}>${rel}`);
  }
}

/** Non-cycle anomalies: type -> one explanation per case. */
export type AnomalyMap = Map<string, string[]>;

export function addAnomaly(m: AnomalyMap, type: string, explanation: string): void {
  const list = m.get(type);
  if (list) list.push(explanation);
  else m.set(type, [explanation]);
}

export interface WorkloadAnalysis {
  deps: DependencyGraph;
  anomalies: AnomalyMap;
  /** Reasons the history can't be analysed (valid: 'unknown'). */
  malformed: string[];
}

export function show(x: unknown): string {
  try {
    return JSON.stringify(x) ?? String(x);
  } catch {
    return String(x);
  }
}
