// Reads the shared VERDICTS.tsv files for Elle histories (test support; not used by the checker).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ElleModel, ElleOptions } from './types.js';

export interface ElleVerdict {
  dir: string;
  file: string;
  model: ElleModel;
  opts: ElleOptions;
  valid: boolean | 'unknown';
  anomalyTypes: string[];
  not: string[];
  notes: string;
}

const list = (cell: string | undefined): string[] => (cell ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0);

/** Options as Elle was given them, read from the checker_opts column (e.g. `{:consistency-models [:serializable]}`). */
export function parseCheckerOpts(model: ElleModel, cell: string): ElleOptions {
  const opts: ElleOptions = { model };
  const cm = /:consistency-models \[([^\]]*)\]/.exec(cell);
  if (cm) opts.consistencyModels = [...cm[1]!.matchAll(/:([\w-]+)/g)].map((m) => m[1]!);
  if (/:linearizable-keys\? true/.test(cell)) opts.linearizableKeys = true;
  if (/:sequential-keys\? true/.test(cell)) opts.sequentialKeys = true;
  return opts;
}

export function readElleVerdicts(historiesDir: string, dir: string): ElleVerdict[] {
  const text = readFileSync(path.join(historiesDir, dir, 'VERDICTS.tsv'), 'utf8');
  const [header, ...rows] = text.split('\n').filter((l) => l.trim().length > 0);
  const cols = header!.split('\t');
  const at = (row: string[], name: string): string => row[cols.indexOf(name)] ?? '';
  const out: ElleVerdict[] = [];
  for (const line of rows) {
    const row = line.split('\t');
    const model = at(row, 'model');
    if (model !== 'list-append' && model !== 'rw-register') continue;
    const validCell = at(row, 'expected_valid');
    out.push({
      dir, file: at(row, 'file'), model,
      opts: parseCheckerOpts(model, at(row, 'checker_opts')),
      valid: validCell === 'unknown' ? 'unknown' : validCell === 'true',
      anomalyTypes: list(at(row, 'anomaly_types')),
      not: list(at(row, 'not')),
      notes: at(row, 'notes'),
    });
  }
  return out;
}
