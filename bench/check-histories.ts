// Times the checker on every shared history (../shared/histories/*/VERDICTS.tsv) and prints a
// table: file, ops, verdict (and whether it matches the expected one), ms; then totals.
// Usage: npx tsx bench/check-histories.ts [--timeout-s N] [--filter SUBSTRING]

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { SHARED_HISTORIES_DIR } from '../src/check/corpus.js';
import { parseHistory } from '../src/check/parse/index.js';
import { isCheckModelName, runCheck, type CheckModelName } from '../src/check/run.js';
import { readEdnForms } from '../src/check/parse/edn-reader.js';

/** Knossos-hard etcd logs that Porcupine's paper compares against Knossos. */
const HIGHLIGHT = ['etcd_007.log', 'etcd_099.log', 'etcd_040.log'];

interface Row {
  name: string;
  model: CheckModelName | undefined;
  expected: string;
  initial: unknown;
  consistencyModels: string[] | undefined;
  linearizableKeys: boolean;
  sequentialKeys: boolean;
}

function argValue(flag: string): string | undefined {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function readTable(dir: string): Row[] {
  const [header, ...lines] = readFileSync(path.join(SHARED_HISTORIES_DIR, dir, 'VERDICTS.tsv'), 'utf8').split('\n').filter((l) => l.trim());
  const cols = header!.split('\t');
  return lines.map((line) => {
    const cells = Object.fromEntries(line.split('\t').map((c, i) => [cols[i], c])) as Record<string, string>;
    const modelWord = (cells['model'] ?? '').split(/\s/)[0]!;
    const model = modelWord === 'etcd-register' ? 'cas-register' : isCheckModelName(modelWord) ? modelWord : undefined;
    const opts = cells['checker_opts'] ?? '';
    const cm = /:consistency-models \[([^\]]*)\]/.exec(opts)?.[1];
    const initialText = cells['initial_state'] ?? '';
    const initialEdn = initialText.startsWith('{') ? initialText.slice(0, initialText.indexOf('}') + 1) : initialText.split(/\s/)[0] ?? '';
    return {
      name: path.join(dir, cells['file']!),
      model,
      expected: cells['expected'] ?? cells['expected_valid'] ?? '?',
      initial: /^-?\d+$|^\{/.test(initialEdn) ? readEdnForms(initialEdn).forms[0] : undefined,
      consistencyModels: cm ? cm.split(/\s+/).map((m) => m.replace(/^:/, '')) : undefined,
      linearizableKeys: opts.includes(':linearizable-keys? true'),
      sequentialKeys: opts.includes(':sequential-keys? true'),
    };
  });
}

function expectedValid(expected: string): boolean | 'unknown' | undefined {
  if (expected === 'linearizable' || expected === 'true' || expected === 'none') return true;
  if (expected === 'not-linearizable' || expected === 'false') return false;
  return expected === 'unknown' ? 'unknown' : undefined;
}

function main(): void {
  const timeoutS = Number(argValue('--timeout-s') ?? 60);
  const filter = argValue('--filter') ?? '';
  const rows = ['porcupine', 'knossos', 'elle', 'elle-cli'].flatMap(readTable).filter((r) => r.name.includes(filter));
  const results: { name: string; ops: number; verdict: string; ok: boolean; ms: number }[] = [];
  for (const row of rows) {
    const text = readFileSync(path.join(SHARED_HISTORIES_DIR, row.name), 'utf8');
    const startMs = performance.now();
    const { history, format } = parseHistory(text, { file: row.name });
    const report = runCheck({
      history,
      format,
      ...(row.model ? { model: row.model } : {}),
      initial: row.initial,
      ...(row.consistencyModels ? { consistencyModels: row.consistencyModels } : {}),
      timeoutMs: timeoutS * 1000,
      elleKeyAssumptions: { linearizableKeys: row.linearizableKeys, sequentialKeys: row.sequentialKeys },
    });
    const ms = performance.now() - startMs;
    results.push({ name: row.name, ops: history.length, verdict: String(report.valid), ok: report.valid === expectedValid(row.expected), ms });
  }
  const width = Math.max(...results.map((r) => r.name.length));
  console.log(`${'file'.padEnd(width)}  ${'ops'.padStart(6)}  ${'verdict'.padEnd(8)} expected  ${'ms'.padStart(9)}`);
  for (const r of results) {
    const mark = r.ok ? 'yes' : 'NO';
    const star = HIGHLIGHT.some((h) => r.name.endsWith(h)) ? '  <- Knossos-hard' : '';
    console.log(`${r.name.padEnd(width)}  ${String(r.ops).padStart(6)}  ${r.verdict.padEnd(8)} ${mark.padEnd(8)}  ${r.ms.toFixed(1).padStart(9)}${star}`);
  }
  const total = results.reduce((s, r) => s + r.ms, 0);
  const byDir = new Map<string, number>();
  for (const r of results) byDir.set(r.name.split('/')[0]!, (byDir.get(r.name.split('/')[0]!) ?? 0) + r.ms);
  console.log(`\n${results.length} files, ${results.filter((r) => r.ok).length} with the expected verdict; total ${(total / 1000).toFixed(2)} s (parse + check)`);
  for (const [dir, ms] of byDir) console.log(`  ${dir}: ${(ms / 1000).toFixed(2)} s`);
  const slowest = [...results].sort((a, b) => b.ms - a.ms).slice(0, 5);
  console.log(`slowest: ${slowest.map((r) => `${r.name} ${r.ms.toFixed(0)} ms`).join(', ')}`);
}

main();
