// Every Elle history in ../shared/histories gets the verdict, anomaly types and `not` models that
// Elle gave it (VERDICTS.tsv). Options come from the checker_opts column, never from file names.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { History } from '../history.js';
import { parseEdnHistory } from '../parse/edn.js';
import { parseElleJson } from '../parse/elle-json.js';
import { checkElle } from './index.js';
import { readElleVerdicts, type ElleVerdict } from './verdicts.js';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const historiesDir = path.resolve(projectRoot, '../shared/histories');

function load(v: ElleVerdict): History {
  const text = readFileSync(path.join(historiesDir, v.dir, v.file), 'utf8');
  return v.file.endsWith('.json') ? parseElleJson(text, v.file) : parseEdnHistory(text, v.file);
}

const verdicts = ['elle', 'elle-cli'].flatMap((dir) => readElleVerdicts(historiesDir, dir));

describe('Elle VERDICTS.tsv', () => {
  it('finds the shared histories', () => {
    expect(existsSync(historiesDir)).toBe(true);
    expect(verdicts.length).toBeGreaterThanOrEqual(27);
  });

  for (const v of verdicts) {
    it(`${v.dir}/${v.file}`, () => {
      const history = load(v);
      const result = checkElle(history, v.opts);
      expect(result.valid).toBe(v.valid);
      expect(result.opCount).toBe(history.length);
      if (v.anomalyTypes.includes('cycle-search-timeout')) {
        // Elle's search was cut short, so its list is a lower bound: we must rule out at least the
        // models Elle ruled out, and back the verdict with a concrete cycle.
        const ruledOut = new Set([...result.not, ...result.alsoNot]);
        for (const m of v.not) expect(ruledOut).toContain(m);
        expect(result.cycles?.length ?? 0).toBeGreaterThan(0);
        expect(result.anomalyTypes).not.toContain('cycle-search-timeout');
      } else {
        expect(result.anomalyTypes).toEqual(v.anomalyTypes);
        expect(result.not).toEqual(v.not);
      }
    });
  }
});

describe('cycle explanations', () => {
  it('explains the paper example cycle op by op', () => {
    const v = verdicts.find((x) => x.dir === 'elle' && x.anomalyTypes.join() === 'G-single-item')!;
    const result = checkElle(load(v), v.opts);
    const cycle = result.cycles!.find((c) => c.type === 'G-single-item')!;
    expect(cycle.steps.map((s) => s.rel).sort()).toEqual(['rw', 'wr', 'ww']);
    const text = result.explanations.join('\n');
    expect(text).toMatch(/did not observe T\d+'s append of \d+ to 255/);
    expect(text).toMatch(/a contradiction!/);
  });
});
