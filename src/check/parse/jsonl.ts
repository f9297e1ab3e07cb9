/**
 * Our own history format, written by the fault-injection harness: JSON Lines, one event per line.
 *
 *   {"process": 3, "type": "invoke", "f": "put", "key": "k1", "value": "v1", "time": 1712345678901234}
 *   {"process": 3, "type": "ok",     "f": "put", "key": "k1", "value": "v1", "time": 1712345678955555}
 *
 * - `process` (required): integer or string client id. A process has at most one op open; after an
 *   `info` it must not be reused (use a fresh id), as in Jepsen.
 * - `type` (required): "invoke" | "ok" | "fail" | "info". `fail` = definitely did not happen;
 *   `info` = unknown outcome (e.g. timeout).
 * - `f` (required): operation name (read, write, cas, get, put, append, acquire, release, add, txn).
 * - `key` (optional): string key; ops on different keys are checked independently.
 * - `value`: the argument on invoke, the result on ok (e.g. the value read); null when none.
 * - `time` (optional): monotonic nanoseconds; informational (order is the line order).
 * - `index`, `error` (optional) are kept. Blank lines are ignored; the file is in real-time order:
 *   an event is written after every event that happened before it.
 */

import { HistoryParseError, type History } from '../history.js';
import { buildOp } from './op-builder.js';

/** V8 reports where JSON.parse stopped as "... at position N" (or "line L column C"). */
function jsonErrorColumn(error: unknown): number {
  const message = error instanceof Error ? error.message : '';
  const position = /position (\d+)/.exec(message);
  if (position) return Number(position[1]) + 1;
  const column = /column (\d+)/.exec(message);
  return column ? Number(column[1]) : 1;
}

export function parseJsonl(text: string, file?: string): History {
  const history: History = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new HistoryParseError(`invalid JSON: ${message}`, file, i + 1, jsonErrorColumn(error));
    }
    const locate = () => ({ file, line: i + 1, column: 1 });
    if (raw !== null && typeof raw === 'object' && !('process' in raw)) {
      throw new HistoryParseError('event needs "process"', file, i + 1, 1);
    }
    history.push(buildOp(raw, history.length, locate));
  }
  return history;
}
