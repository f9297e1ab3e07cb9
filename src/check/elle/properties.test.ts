// Property tests: generated serial executions are valid; planted anomalies are found; malformed
// input yields a verdict, never a crash or a hang.
import { describe, expect, it } from 'vitest';
import type { History, Op } from '../history.js';
import { checkElle } from './index.js';
import { prng, serialHistory, type GenOptions } from './gen.js';
import type { ElleModel } from './types.js';

const base = (model: ElleModel, seed: number): GenOptions => ({
  model, seed, txnCount: 300, processCount: 5, keyCount: 6, failRate: 0.05, infoRate: 0.03,
});

const op = (index: number, process: number, type: Op['type'], value: unknown): Op => ({ index, process, type, f: 'txn', value });

/** Re-number :index so appended ops stay in file order. */
function renumber(h: History): History {
  return h.map((o, i) => ({ ...o, index: i }));
}

describe('serial executions are valid', () => {
  for (const model of ['list-append', 'rw-register'] as const) {
    for (let seed = 1; seed <= 12; seed++) {
      it(`${model} seed ${seed}`, () => {
        const h = serialHistory(base(model, seed));
        const r = checkElle(h, { model });
        expect(r.anomalyTypes).toEqual([]);
        expect(r.valid).toBe(true);
      });
    }
  }
});

describe('planted anomalies are detected', () => {
  it('write skew in an rw-register history is G2-item', () => {
    const h = serialHistory(base('rw-register', 7));
    const x = 100;
    const y = 101;
    const skew = [
      op(0, 900, 'invoke', [['r', x, null], ['w', y, 1]]),
      op(0, 901, 'invoke', [['r', y, null], ['w', x, 1]]),
      op(0, 900, 'ok', [['r', x, null], ['w', y, 1]]),
      op(0, 901, 'ok', [['r', y, null], ['w', x, 1]]),
    ];
    const r = checkElle(renumber([...h, ...skew]), { model: 'rw-register', consistencyModels: ['serializable'] });
    expect(r.valid).toBe(false);
    expect(r.anomalyTypes).toContain('G2-item');
    expect(r.not).toEqual(['repeatable-read']);
    expect(r.cycles!.some((c) => c.type === 'G2-item' && c.steps.every((s) => s.rel === 'rw'))).toBe(true);
  });

  it('a lost append (acknowledged, then missing from later reads) is found', () => {
    const rand = prng(42);
    let planted = 0;
    for (let seed = 1; seed <= 8; seed++) {
      const h = serialHistory({ ...base('list-append', seed), failRate: 0, infoRate: 0 });
      // Find an ok append whose element later reads observed, and erase it from every read.
      const appends = h.filter((o) => o.type === 'ok').flatMap((o) => (o.value as unknown[][]).filter((m) => m[0] === 'append'));
      const seen = appends.filter(([, k, v]) => h.some((o) => o.type === 'ok' && (o.value as unknown[][]).some((m) => m[0] === 'r' && m[1] === k && Array.isArray(m[2]) && (m[2] as unknown[]).includes(v) && (m[2] as unknown[]).at(-1) !== v)));
      if (seen.length === 0) continue;
      const [, k, v] = seen[Math.floor(rand() * seen.length)]!;
      const corrupted = h.map((o) => ({
        ...o,
        value: (o.value as unknown[][]).map((m) => (m[0] === 'r' && m[1] === k && Array.isArray(m[2]) ? ['r', k, (m[2] as unknown[]).filter((e) => e !== v)] : m)),
      }));
      const r = checkElle(corrupted, { model: 'list-append' });
      expect(r.valid, `seed ${seed}`).toBe(false);
      expect(r.cycles!.length + r.anomalyTypes.length).toBeGreaterThan(0);
      planted++;
    }
    expect(planted).toBeGreaterThanOrEqual(4);
  });

  it('a read with two elements swapped is an incompatible order', () => {
    const h: History = [
      op(0, 0, 'invoke', [['append', 'x', 1]]), op(1, 0, 'ok', [['append', 'x', 1]]),
      op(2, 0, 'invoke', [['append', 'x', 2]]), op(3, 0, 'ok', [['append', 'x', 2]]),
      op(4, 1, 'invoke', [['r', 'x', null]]), op(5, 1, 'ok', [['r', 'x', [1, 2]]]),
      op(6, 2, 'invoke', [['r', 'x', null]]), op(7, 2, 'ok', [['r', 'x', [2, 1]]]),
    ];
    const r = checkElle(h, { model: 'list-append' });
    expect(r.valid).toBe(false);
    expect(r.anomalyTypes).toContain('incompatible-order');
  });

  it('reading an aborted append is G1a', () => {
    const h = serialHistory({ ...base('list-append', 3), failRate: 0, infoRate: 0 });
    const extra = [
      op(0, 800, 'invoke', [['append', 'z', 1]]), op(0, 800, 'fail', [['append', 'z', 1]]),
      op(0, 801, 'invoke', [['r', 'z', null]]), op(0, 801, 'ok', [['r', 'z', [1]]]),
    ];
    const r = checkElle(renumber([...h, ...extra]), { model: 'list-append' });
    expect(r.valid).toBe(false);
    expect(r.anomalyTypes).toContain('G1a');
    expect(r.not).toEqual(['read-committed']);
  });

  it('a stale read after a completed append is a real-time anomaly only', () => {
    const h: History = [
      op(0, 0, 'invoke', [['append', 'x', 1]]), op(1, 0, 'ok', [['append', 'x', 1]]),
      op(2, 1, 'invoke', [['r', 'x', null]]), op(3, 1, 'ok', [['r', 'x', []]]),
    ];
    expect(checkElle(h, { model: 'list-append', consistencyModels: ['serializable'] }).valid).toBe(true);
    const strict = checkElle(h, { model: 'list-append' });
    expect(strict.valid).toBe(false);
    expect(strict.anomalyTypes).toEqual(['G-single-item-realtime']);
  });
});

describe('malformed input', () => {
  const shapes: unknown[] = [
    null, 3, 'txn', {}, [null], [[]], [['append']], [['append', 1]], [['x', 1, 2]], [['r', 1, 'notalist']],
    [['append', { a: 1 }, [1, [2]]]], [['r', [1, 2], [[1], [1]]]], [['w', null, null]], [['append', 1, 1], ['append', 1, 1]],
  ];
  for (const model of ['list-append', 'rw-register'] as const) {
    it(`${model}: odd values give a verdict without throwing`, () => {
      const rand = prng(99);
      for (let trial = 0; trial < 200; trial++) {
        const h: History = [];
        for (let i = 0; i < 12; i++) {
          const value = shapes[Math.floor(rand() * shapes.length)];
          const type = (['invoke', 'ok', 'fail', 'info'] as const)[Math.floor(rand() * 4)]!;
          h.push(op(i, Math.floor(rand() * 3), type, value));
        }
        const r = checkElle(h, { model, timeoutMs: 1000 });
        expect(['unknown', true, false]).toContain(r.valid);
      }
    });
  }

  it('rejects unknown consistency models with a clear error', () => {
    expect(() => checkElle([], { model: 'list-append', consistencyModels: ['serialisable'] })).toThrow(/unknown consistency model/);
  });

  it('an empty history is unknown (empty transaction graph)', () => {
    const r = checkElle([], { model: 'rw-register' });
    expect(r.valid).toBe('unknown');
    expect(r.anomalyTypes).toEqual(['empty-transaction-graph']);
  });
});
