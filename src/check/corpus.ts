// The shared third-party histories (../shared/histories beside the project) and their expected
// verdicts, read from each directory's VERDICTS.tsv. Used by the tests and the bench script.

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readEdnForms } from './parse/edn-reader.js';
import type { LinModelName } from './models/index.js';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SHARED_HISTORIES_DIR = path.resolve(PROJECT_ROOT, '../shared/histories');

export interface LinCorpusEntry {
  /** Path relative to SHARED_HISTORIES_DIR. */
  name: string;
  path: string;
  model: LinModelName;
  /** true / false; 'empty' for a file upstream lists without a verdict because it has no ops. */
  expected: boolean | 'empty';
  /** Initial state from the verdict table, decoded from EDN; undefined means the model default. */
  initial: unknown;
}

type Row = Record<string, string>;

function readTsv(file: string): Row[] {
  const [header, ...lines] = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
  const columns = header!.split('\t');
  return lines.map((line) => {
    const cells = line.split('\t');
    return Object.fromEntries(columns.map((c, i) => [c, cells[i] ?? '']));
  });
}

/** Table models are prose ("mutex (knossos linearizable)", "etcd-register"): map to our names. */
function modelFromTable(text: string): LinModelName | undefined {
  const name = text.split(/\s/)[0]!;
  if (name === 'etcd-register') return 'cas-register';
  const known: readonly string[] = ['register', 'cas-register', 'kv', 'mutex', 'multi-register', 'counter'];
  return known.includes(name) ? (name as LinModelName) : undefined;
}

/** Table initial states: EDN ("0", "{:x 0 :y 0}") followed by prose; "unlocked"/"init nil" mean default. */
function initialFromTable(text: string | undefined): unknown {
  if (!text || text === '-' || /^(unlocked|init nil)/.test(text)) return undefined;
  const edn = text.startsWith('{') ? text.slice(0, text.indexOf('}') + 1) : text.split(/\s/)[0]!;
  return readEdnForms(edn).forms[0];
}

function expectedFromTable(text: string): boolean | 'empty' | undefined {
  switch (text) {
    case 'linearizable':
    case 'true':
      return true;
    case 'not-linearizable':
    case 'false':
      return false;
    case 'none':
      return 'empty';
    default:
      return undefined;
  }
}

function entriesOf(dir: string, columns: { expected: string; model: string; initial?: string }): LinCorpusEntry[] {
  const table = path.join(SHARED_HISTORIES_DIR, dir, 'VERDICTS.tsv');
  if (!existsSync(table)) return [];
  const entries: LinCorpusEntry[] = [];
  for (const row of readTsv(table)) {
    const model = modelFromTable(row[columns.model] ?? '');
    const expected = expectedFromTable(row[columns.expected] ?? '');
    if (model === undefined || expected === undefined) continue; // an Elle row: not ours
    const name = path.join(dir, row['file']!);
    const initialText = columns.initial ? row[columns.initial] : row['checker_opts'];
    entries.push({ name, path: path.join(SHARED_HISTORIES_DIR, name), model, expected, initial: initialFromTable(initialText) });
  }
  return entries;
}

/** Every linearizability history with a known verdict: Porcupine, Knossos, elle-cli's Knossos JSON. */
export function linCorpus(): LinCorpusEntry[] {
  return [
    ...entriesOf('porcupine', { expected: 'expected', model: 'model' }),
    ...entriesOf('knossos', { expected: 'expected', model: 'model', initial: 'initial_state' }),
    ...entriesOf('elle-cli', { expected: 'expected_valid', model: 'model' }),
  ];
}
