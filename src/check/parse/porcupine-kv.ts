// Porcupine's kv logs (test_data/kv/*.txt): one EDN map per line,
//   {:process 0, :type :invoke, :f :get, :key "k", :value nil}
// with :f get/put/append on string keys. Read as an EDN stream, then checked for a :key.

import { HistoryParseError, type History } from '../history.js';
import { parseEdnHistory } from './edn.js';

const KV_FUNCTIONS: ReadonlySet<string> = new Set(['get', 'put', 'append']);

export function parsePorcupineKv(text: string, file?: string): History {
  const history = parseEdnHistory(text, file);
  history.forEach((op, i) => {
    if (op.key === undefined || !KV_FUNCTIONS.has(op.f)) {
      // Streams have one map per line here, so the op number is the line of non-blank content.
      throw new HistoryParseError(`op ${i} needs :key and :f get/put/append`, file, lineOfOp(text, i), 1);
    }
  });
  return history;
}

/** 1-based line of the i-th non-blank line (only computed on error). */
function lineOfOp(text: string, opNumber: number): number {
  const lines = text.split('\n');
  let seen = -1;
  for (let line = 0; line < lines.length; line++) {
    if (lines[line]!.trim() !== '' && ++seen === opNumber) return line + 1;
  }
  return lines.length;
}
