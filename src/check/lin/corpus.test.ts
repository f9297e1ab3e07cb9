// Every shared linearizability history gets the verdict its VERDICTS.tsv gives (one test per file).

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { linCorpus } from '../corpus.js';
import { parseHistory } from '../parse/index.js';
import { runCheck } from '../run.js';

/** Generous per-file budget: the slowest file takes well under a second on a laptop. */
const FILE_TIMEOUT_MS = 30_000;

const corpus = linCorpus();

describe('shared linearizability histories', () => {
  it('finds the shared corpus beside the project', () => {
    // 88 Porcupine etcd logs, 6 kv logs, 106 Knossos EDN files, 2 elle-cli Knossos JSON files.
    expect(corpus.length).toBeGreaterThanOrEqual(202);
  });

  for (const entry of corpus) {
    it(`${entry.name} is ${entry.expected === 'empty' ? 'empty' : entry.expected ? 'linearizable' : 'not linearizable'}`, () => {
      const { history, format } = parseHistory(readFileSync(entry.path, 'utf8'), { file: entry.name });
      const report = runCheck({ history, format, model: entry.model, initial: entry.initial });
      if (entry.expected === 'empty') {
        expect(report.opCount).toBe(0);
        expect(report.valid).toBe(true);
        return;
      }
      expect(report.valid).toBe(entry.expected);
      if (entry.expected === false) {
        // An invalid verdict must say why: the op and a prefix drawn from the failing partition.
        const failure = report.lin!.failure!;
        expect(failure.ops).toContain(failure.failingOp);
        expect(failure.longestPrefix).not.toContain(failure.failingOp);
        expect(report.timelineHtml).toContain('<svg');
      }
    }, FILE_TIMEOUT_MS);
  }
});
