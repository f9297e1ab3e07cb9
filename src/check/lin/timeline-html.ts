// A self-contained HTML page (inline SVG, no scripts or external files) showing the failing
// partition as a timeline: one row per process, one bar per op from call to return, like
// Porcupine's visualizer. Ops of the longest linearizable prefix are green and numbered in
// linearization order; the op that cannot be linearized is red; pending ops are dashed.

import type { LinFailure } from './check.js';
import type { LinOp } from './types.js';

const ROW_HEIGHT_PX = 30;
const BAR_HEIGHT_PX = 20;
const LABEL_WIDTH_PX = 110;
const SLOT_WIDTH_PX = 26;
const MAX_LABEL_CHARS = 40;

export interface TimelineInput<I, O> {
  title: string;
  failure: LinFailure<I, O>;
  describeOp: (op: LinOp<I, O>) => string;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Maps history positions onto dense slots, so other partitions' events leave no gaps. */
function slotScale(ops: readonly LinOp<unknown, unknown>[]): { slot: (position: number) => number; slots: number } {
  const positions = [...new Set(ops.flatMap((op) => [op.callPosition, op.returnPosition]).filter(Number.isFinite))].sort((a, b) => a - b);
  const rank = new Map(positions.map((p, i) => [p, i] as const));
  const end = positions.length + 1;
  return { slot: (p) => (Number.isFinite(p) ? rank.get(p)! : end), slots: end + 1 };
}

function processRows(ops: readonly LinOp<unknown, unknown>[]): Map<number | string, number> {
  const processes = [...new Set(ops.map((op) => op.process))].sort((a, b) =>
    typeof a === 'number' && typeof b === 'number' ? a - b : String(a).localeCompare(String(b)),
  );
  return new Map(processes.map((p, i) => [p, i] as const));
}

function bar<I, O>(op: LinOp<I, O>, input: TimelineInput<I, O>, geometry: { x0: number; x1: number; y: number }, order: number | undefined): string {
  const failing = op.id === input.failure.failingOp.id;
  const fill = failing ? '#f4a6a6' : order !== undefined ? '#b7e4b0' : '#dddddd';
  const stroke = failing ? '#b00000' : '#555555';
  const dash = op.output === undefined ? ' stroke-dasharray="4 3"' : '';
  const text = input.describeOp(op);
  const label = (order !== undefined ? `${order + 1}. ` : '') + (text.length > MAX_LABEL_CHARS ? `${text.slice(0, MAX_LABEL_CHARS - 1)}…` : text);
  const width = Math.max(geometry.x1 - geometry.x0, 6);
  const tooltip = `${text}\nprocess ${String(op.process)}, history index ${op.invoke.index}${failing ? '\nCANNOT BE LINEARIZED' : ''}`;
  return (
    `<g><title>${escapeHtml(tooltip)}</title>` +
    `<rect x="${geometry.x0}" y="${geometry.y}" width="${width}" height="${BAR_HEIGHT_PX}" rx="3" fill="${fill}" stroke="${stroke}"${dash}/>` +
    // A nested <svg> clips the label to its bar (the full text is in the tooltip and the table).
    `<svg x="${geometry.x0}" y="${geometry.y}" width="${width}" height="${BAR_HEIGHT_PX}">` +
    `<text x="4" y="14" font-size="11" font-family="monospace">${escapeHtml(label)}</text></svg></g>`
  );
}

function svgTimeline<I, O>(input: TimelineInput<I, O>): string {
  const { ops, longestPrefix } = input.failure;
  const scale = slotScale(ops as LinOp<unknown, unknown>[]);
  const rows = processRows(ops as LinOp<unknown, unknown>[]);
  const order = new Map(longestPrefix.map((op, i) => [op.id, i] as const));
  const width = LABEL_WIDTH_PX + scale.slots * SLOT_WIDTH_PX + 20;
  const height = rows.size * ROW_HEIGHT_PX + 20;
  const parts: string[] = [];
  for (const [process, row] of rows) {
    const y = 10 + row * ROW_HEIGHT_PX;
    parts.push(`<text x="4" y="${y + 14}" font-size="12" font-family="sans-serif">process ${escapeHtml(String(process))}</text>`);
    parts.push(`<line x1="${LABEL_WIDTH_PX}" x2="${width}" y1="${y + BAR_HEIGHT_PX / 2}" y2="${y + BAR_HEIGHT_PX / 2}" stroke="#eeeeee"/>`);
  }
  for (const op of ops) {
    const y = 10 + rows.get(op.process)! * ROW_HEIGHT_PX;
    const x0 = LABEL_WIDTH_PX + scale.slot(op.callPosition) * SLOT_WIDTH_PX;
    const x1 = LABEL_WIDTH_PX + scale.slot(op.returnPosition) * SLOT_WIDTH_PX + SLOT_WIDTH_PX / 2;
    parts.push(bar(op, input, { x0, x1, y }, order.get(op.id)));
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${parts.join('')}</svg>`;
}

function prefixTable<I, O>(input: TimelineInput<I, O>): string {
  const { longestPrefix, statesAfterPrefix, failingOp } = input.failure;
  const rows = longestPrefix.map(
    (op, i) => `<tr><td>${i + 1}</td><td>${escapeHtml(String(op.process))}</td><td>${escapeHtml(input.describeOp(op))}</td><td>${escapeHtml(statesAfterPrefix[i] ?? '')}</td></tr>`,
  );
  rows.push(`<tr class="bad"><td>✗</td><td>${escapeHtml(String(failingOp.process))}</td><td>${escapeHtml(input.describeOp(failingOp))}</td><td>cannot be linearized here</td></tr>`);
  return `<table><tr><th>#</th><th>process</th><th>op</th><th>state after</th></tr>${rows.join('')}</table>`;
}

/** Renders the failing partition of an invalid result as a standalone HTML document. */
export function renderTimelineHtml<I, O>(input: TimelineInput<I, O>): string {
  const { failure } = input;
  const key = failure.partitionKey === undefined ? '' : ` (key ${escapeHtml(failure.partitionKey)})`;
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${escapeHtml(input.title)}</title>
<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;font-family:monospace;font-size:12px}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}tr.bad td{background:#f4a6a6}.scroll{overflow-x:auto;border:1px solid #ddd}</style>
</head><body>
<h1>${escapeHtml(input.title)}: not linearizable</h1>
<p>Partition ${failure.partitionIndex}${key}: ${failure.ops.length} ops. The longest linearizable prefix has ${failure.longestPrefix.length} ops
(green, numbered); <b>${escapeHtml(input.describeOp(failure.failingOp))}</b> by process ${escapeHtml(String(failure.failingOp.process))} (red)
cannot be linearized after it. Dashed bars have an unknown outcome and stay open to the end.</p>
<div class="scroll">${svgTimeline(input)}</div>
<h2>Longest linearizable prefix</h2>
${prefixTable(input)}
</body></html>
`;
}
