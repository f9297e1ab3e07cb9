// Runs every test/raft/testdata/*.txt transcript through the InteractionEnv. With REWRITE=1
// the expected outputs are regenerated (then READ the diff: a rewrite must never turn a bug
// into an expectation).

import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatDataDriven, parseDataDriven } from './datadriven.js';
import { InteractionEnv } from './env.js';

const TESTDATA_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'testdata');
const REWRITE = process.env['REWRITE'] === '1';

describe('raft interaction transcripts', () => {
  const files = readdirSync(TESTDATA_DIR)
    .filter((f) => f.endsWith('.txt'))
    .sort();
  for (const file of files) {
    it(file, () => {
      const path = join(TESTDATA_DIR, file);
      const text = readFileSync(path, 'utf8');
      const parsed = parseDataDriven(text, file);
      const env = new InteractionEnv();
      const outputs = parsed.cases.map((c) => {
        try {
          return env.handle(c.command);
        } catch (e) {
          throw new Error(`${file}:${c.line}: ${c.command}: ${(e as Error).stack ?? String(e)}`);
        }
      });
      const actual = formatDataDriven(parsed, outputs);
      if (REWRITE) {
        if (actual !== text) writeFileSync(path, actual);
        return;
      }
      expect(actual).toBe(text);
    });
  }
});
