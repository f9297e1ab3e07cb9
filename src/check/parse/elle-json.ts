// Elle-cli JSON histories: one JSON array of op objects
// `{"index", "process", "type", "f"?, "value": [["append", k, v] | ["r", k, null | [...]] | ["w", k, v]]}`.
// JSON.parse does the decoding; a small scanner finds where each top-level element starts so that
// a bad op is reported at its line and column.
import { HistoryParseError, type History } from '../history.js';
import { buildOp } from './op-builder.js';

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(Math.max(offset, 0), text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: end - lineStart + 1 };
}

/** Offset of each element of the top-level array (text already known to be valid JSON). */
function elementOffsets(text: string): number[] {
  const offsets: number[] = [];
  let depth = 0;
  let expectElement = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '"') {
      if (depth === 1 && expectElement) {
        offsets.push(i);
        expectElement = false;
      }
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
      continue;
    }
    if (/\s/.test(ch)) continue;
    if (depth === 1 && expectElement && ch !== ']') {
      offsets.push(i);
      expectElement = false;
    }
    if (ch === '[' || ch === '{') {
      depth++;
      if (depth === 1) expectElement = true;
    } else if (ch === ']' || ch === '}') {
      depth--;
    } else if (ch === ',' && depth === 1) {
      expectElement = true;
    }
  }
  return offsets;
}

/** Offset named by a JSON.parse error message ("... at position N" or "(line L column C)"). */
function errorLocation(text: string, message: string): { line: number; column: number } {
  const lc = /line (\d+) column (\d+)/.exec(message);
  if (lc) return { line: Number(lc[1]), column: Number(lc[2]) };
  const pos = /position (\d+)/.exec(message);
  if (pos) return lineColumn(text, Number(pos[1]));
  return lineColumn(text, text.length);
}

export function parseElleJson(text: string, file?: string): History {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const { line, column } = errorLocation(text, message);
    throw new HistoryParseError(`invalid JSON: ${message}`, file, line, column);
  }
  if (!Array.isArray(raw)) {
    const at = lineColumn(text, text.search(/\S/));
    throw new HistoryParseError('expected a JSON array of ops', file, at.line, at.column);
  }
  let offsets: number[] | undefined;
  return raw.map((op: unknown, i: number) =>
    buildOp(op, i, () => {
      offsets ??= elementOffsets(text);
      return { file, ...lineColumn(text, offsets[i] ?? 0) };
    }),
  );
}

/** Same function under the name the format dispatcher uses. */
export const parseElleJsonHistory = parseElleJson;
