// Jepsen EDN histories: one vector `[...]` or list `(...)` of op maps, or a stream of op maps at
// the top level. Keywords become strings without the colon, nil null (see history.ts).

import { HistoryParseError, type History } from '../history.js';
import { lineColumnAt, readEdnForms, type EdnForms } from './edn-reader.js';
import { buildOp } from './op-builder.js';

function isOpSequence(forms: EdnForms): boolean {
  return forms.forms.length === 1 && Array.isArray(forms.forms[0]);
}

/** Parses a Jepsen EDN history. Throws HistoryParseError (with line and column) on bad input. */
export function parseEdnHistory(text: string, file?: string): History {
  const forms = readEdnForms(text, file);
  const locate = (offset: number) => () => ({ file, ...lineColumnAt(text, offset) });
  if (isOpSequence(forms)) {
    const ops = forms.forms[0] as unknown[];
    const offsets = forms.childOffsets[0]!;
    return ops.map((raw, i) => buildOp(raw, i, locate(offsets[i]!)));
  }
  const history: History = [];
  forms.forms.forEach((raw, i) => {
    if (Array.isArray(raw)) {
      const { line, column } = lineColumnAt(text, forms.offsets[i]!);
      throw new HistoryParseError('a stream of op maps must not also contain vectors or lists', file, line, column);
    }
    history.push(buildOp(raw, i, locate(forms.offsets[i]!)));
  });
  return history;
}
