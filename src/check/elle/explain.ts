// Cycles explained in words, op by op, in the style of Elle's cycle explanations.
import type { DependencyGraph } from './analysis.js';
import type { FoundCycle } from './cycles.js';
import { PROCESS, REALTIME, relName } from './graph.js';
import type { Txn } from './txn.js';
import type { ElleCycle } from './types.js';

const name = (t: Txn): string => `T${t.index}`;

function edgeText(deps: DependencyGraph, a: Txn, b: Txn, rel: number): string {
  const why = deps.reason(a.id, b.id, rel);
  if (why) return why(name(a), name(b));
  if (rel === PROCESS) return `process ${String(a.process)} executed ${name(a)} before ${name(b)}`;
  if (rel === REALTIME) return `${name(a)} completed before ${name(b)} was invoked`;
  return `${name(a)} ${relName(rel)} ${name(b)}`;
}

export function toElleCycle(deps: DependencyGraph, txns: readonly Txn[], c: FoundCycle): ElleCycle {
  const steps = c.vertices.map((v, i) => {
    const a = txns[v]!;
    const b = txns[c.vertices[(i + 1) % c.vertices.length]!]!;
    const rel = c.rels[i]!;
    return { fromIndex: a.index, toIndex: b.index, rel: relName(rel), text: edgeText(deps, a, b, rel) };
  });
  return { type: c.type, txnIndices: c.vertices.map((v) => txns[v]!.index), steps };
}

function showTxn(t: Txn): string {
  const mops = t.mops.map((m) => `[${m.f} ${JSON.stringify(m.key)} ${JSON.stringify(m.value) ?? 'nil'}]`).join(' ');
  return `{index ${t.index}, process ${String(t.process)}, type ${t.type}, value [${mops}]}`;
}

export function explainCycle(txns: readonly Txn[], vertexIds: readonly number[], cycle: ElleCycle): string {
  const lines = [`${cycle.type}: a dependency cycle of ${cycle.steps.length} transactions.`, 'Let:'];
  for (const v of vertexIds) lines.push(`  T${txns[v]!.index} = ${showTxn(txns[v]!)}`);
  lines.push('Then:');
  cycle.steps.forEach((s, i) => {
    const last = i === cycle.steps.length - 1;
    lines.push(`  - ${last ? 'However, ' : ''}T${s.fromIndex} < T${s.toIndex}, because ${s.text}${last ? ': a contradiction!' : '.'}`);
  });
  return lines.join('\n');
}
