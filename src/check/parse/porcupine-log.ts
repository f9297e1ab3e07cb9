// Porcupine's Jepsen etcd logs (test_data/jepsen/etcd_*.log): one op per line,
//   INFO  jepsen.util - <process>\t:<type>\t:<f>\t<value>
// separated by tabs or runs of spaces. A value is nil, an integer, `[from to]` or `:timed-out`.

import { HistoryParseError, type History, type Op, type OpType } from '../history.js';

const LINE = /^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:(invoke|ok|fail|info)\s+:([A-Za-z][\w-]*)\s+(.*?)\s*$/;
const PAIR = /^\[\s*(-?\d+)\s+(-?\d+)\s*\]$/;

function parseValue(text: string, file: string | undefined, line: number, column: number): unknown {
  if (text === 'nil') return null;
  if (/^-?\d+$/.test(text)) return Number(text);
  const pair = PAIR.exec(text);
  if (pair) return [Number(pair[1]), Number(pair[2])];
  if (/^:[\w-]+$/.test(text)) return text.slice(1);
  throw new HistoryParseError(`bad value '${text}' (expected nil, an integer, [a b] or a keyword)`, file, line, column);
}

/** Parses a Porcupine etcd log. Blank lines are skipped; any other unrecognized line is an error. */
export function parsePorcupineLog(text: string, file?: string): History {
  const history: History = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const lineText = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (lineText.trim() === '') return;
    const match = LINE.exec(lineText);
    if (!match) throw new HistoryParseError('expected "INFO jepsen.util - <process> :<type> :<f> <value>"', file, i + 1, 1);
    const valueColumn = lineText.lastIndexOf(match[4]!) + 1;
    const op: Op = {
      index: history.length,
      process: Number(match[1]),
      type: match[2] as OpType,
      f: match[3]!,
      value: parseValue(match[4]!, file, i + 1, valueColumn),
    };
    history.push(op);
  });
  return history;
}
