// Indirection to the Elle-cli JSON parser, which the Elle half of the checker owns
// (src/check/parse/elle-json.ts). TEMPORARY until that file exists: a minimal JSON-array reader.

import { HistoryParseError, type History } from '../history.js';
import { buildOp } from './op-builder.js';

export function parseElleJsonHistory(text: string, file?: string): History {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new HistoryParseError(`invalid JSON: ${error instanceof Error ? error.message : String(error)}`, file, 1, 1);
  }
  if (!Array.isArray(raw)) throw new HistoryParseError('expected a JSON array of ops', file, 1, 1);
  return raw.map((op, i) => buildOp(op, i, () => ({ file, line: 1, column: 1 })));
}
