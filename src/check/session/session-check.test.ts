import { describe, expect, it } from 'vitest';
import { parseJsonl } from '../parse/jsonl.js';
import { checkSessions } from './session-check.js';

/** Builds a jsonl history from compact rows: [process, type, f, value, revision?]. */
function history(rows: Array<[number, string, string, unknown, number?]>, key = 'k'): ReturnType<typeof parseJsonl> {
  const lines = rows.map(([process, type, f, value, revision]) => JSON.stringify({ process, type, f, key, value, ...(revision === undefined ? {} : { revision }) }));
  return parseJsonl(lines.join('\n'));
}

describe('session guarantees checker', () => {
  it('accepts read-your-writes and monotonic reads across sessions', () => {
    const h = history([
      [1, 'invoke', 'write', 'a'],
      [1, 'ok', 'write', 'a', 5],
      [2, 'invoke', 'read', null],
      [2, 'ok', 'read', null, 4], // before a's revision: nothing yet, fine
      [1, 'invoke', 'read', null],
      [1, 'ok', 'read', 'a', 5],
      [2, 'invoke', 'read', null],
      [2, 'ok', 'read', 'a', 7],
    ]);
    const r = checkSessions(h);
    expect(r.violations).toEqual([]);
    expect(r.valid).toBe(true);
    expect(r.readsChecked).toBe(3);
  });

  it('catches a session whose read goes back in revision', () => {
    const h = history([
      [1, 'invoke', 'read', null],
      [1, 'ok', 'read', null, 9],
      [1, 'invoke', 'read', null],
      [1, 'ok', 'read', null, 8],
    ]);
    const r = checkSessions(h);
    expect(r.valid).toBe(false);
    expect(r.violations.map((v) => v.kind)).toEqual(['monotonic-reads']);
  });

  it('catches a read that misses the session own acknowledged write', () => {
    const h = history([
      [1, 'invoke', 'write', 'a'],
      [1, 'ok', 'write', 'a', 5],
      [1, 'invoke', 'read', null],
      [1, 'ok', 'read', null, 4],
    ]);
    const kinds = checkSessions(h).violations.map((v) => v.kind);
    expect(kinds).toContain('read-your-writes');
  });

  it('catches a value older than the newest write at the read revision', () => {
    const h = history([
      [1, 'invoke', 'write', 'a'],
      [1, 'ok', 'write', 'a', 5],
      [1, 'invoke', 'write', 'b'],
      [1, 'ok', 'write', 'b', 6],
      [2, 'invoke', 'read', null],
      [2, 'ok', 'read', 'a', 6],
    ]);
    const r = checkSessions(h);
    expect(r.violations.map((v) => v.kind)).toEqual(['wrong-value']);
    expect(r.violations[0]!.message).toMatch(/"b" was written at revision 6/);
  });

  it('catches a value from the future and a value nobody wrote', () => {
    const future = history([
      [1, 'invoke', 'write', 'a'],
      [1, 'ok', 'write', 'a', 9],
      [2, 'invoke', 'read', null],
      [2, 'ok', 'read', 'a', 3],
    ]);
    expect(checkSessions(future).violations.map((v) => v.kind)).toEqual(['wrong-value']);
    const invented = history([
      [2, 'invoke', 'read', null],
      [2, 'ok', 'read', 'zzz', 3],
    ]);
    expect(checkSessions(invented).violations.map((v) => v.kind)).toEqual(['unknown-value']);
  });

  it('accepts a value whose write outcome is unknown (it may have been applied)', () => {
    const h = history([
      [1, 'invoke', 'write', 'a'],
      [1, 'ok', 'write', 'a', 5],
      [3, 'invoke', 'write', 'c'],
      [3, 'info', 'write', 'c'],
      [2, 'invoke', 'read', null],
      [2, 'ok', 'read', 'c', 8],
    ]);
    expect(checkSessions(h).valid).toBe(true);
  });
});
