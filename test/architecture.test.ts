// Arrows point down (DESIGN.md): this test reads every import in src/ and fails on one that
// points the wrong way, and on any Node/I-O import or clock/randomness use in the pure core.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../src');

/**
 * Which top-level src/ modules each module may import (besides itself). Tests and test
 * support files (`*.test.ts`, `test-*.ts`, e.g. the in-process cluster) are exempt.
 */
const ALLOWED: Record<string, string[]> = {
  raft: [],
  check: [],
  wire: [],
  storage: ['raft'],
  transport: ['raft', 'wire', 'storage'],
  'state-machine': ['raft', 'wire', 'storage'],
  server: ['raft', 'wire', 'storage', 'transport', 'state-machine'],
  client: ['wire'],
  cli: ['client', 'server', 'check', 'wire'],
};

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.startsWith('test-')) out.push(p);
  }
  return out;
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]/g)) out.push(m[1]!);
  for (const m of text.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1]!);
  return out;
}

function moduleOf(file: string): string {
  return relative(SRC, file).split('/')[0]!;
}

describe('architecture', () => {
  const files = sourceFiles(SRC);

  it('finds the source tree', () => {
    expect(files.length).toBeGreaterThan(50);
  });

  it('every import between src/ modules points down', () => {
    const wrong: string[] = [];
    for (const file of files) {
      const from = moduleOf(file);
      const allowed = ALLOWED[from];
      if (!allowed) {
        wrong.push(`${relative(SRC, file)}: module "${from}" has no entry in ALLOWED`);
        continue;
      }
      for (const spec of importsOf(file)) {
        if (!spec.startsWith('.')) continue;
        const target = resolve(dirname(file), spec);
        if (!target.startsWith(SRC)) {
          wrong.push(`${relative(SRC, file)} imports ${spec} (outside src/)`);
          continue;
        }
        const to = moduleOf(target);
        if (to !== from && !allowed.includes(to)) wrong.push(`${relative(SRC, file)} (${from}) imports ${spec} (${to})`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('the raft core is pure: no node:/I-O imports, clocks, randomness, timers or Promises', () => {
    const bad: string[] = [];
    for (const file of files.filter((f) => moduleOf(f) === 'raft')) {
      const text = readFileSync(file, 'utf8');
      for (const spec of importsOf(file)) if (!spec.startsWith('./')) bad.push(`${relative(SRC, file)} imports ${spec}`);
      for (const pattern of [/Date\.now\(/, /Math\.random\(/, /setTimeout\(/, /setInterval\(/, /new Promise\b/, /\basync\b/, /\bawait\b/, /performance\.now\(/]) {
        if (pattern.test(text)) bad.push(`${relative(SRC, file)} uses ${pattern.source}`);
      }
    }
    expect(bad).toEqual([]);
  });
});
