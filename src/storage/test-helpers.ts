// Test helpers: temp data directories (created under os.tmpdir(), removed by the returned
// cleanup) and a seeded PRNG.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function makeTempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `raftkv-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Deterministic PRNG (mulberry32): the same seed gives the same sequence in [0, 1). */
export { prng as seededRandom } from '../check/elle/gen.js';
