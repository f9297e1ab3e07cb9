// kvcheck: exit codes, --json shape, --html output, usage errors; and the package bin end to end.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT_BAD_INPUT, EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID, runCli } from './cli.js';
import { PROJECT_ROOT, SHARED_HISTORIES_DIR } from './corpus.js';
import { seededRandom } from './lin/random.js';

function run(...argv: string[]): { code: number; out: string; err: string } {
  const out: string[] = [];
  const err: string[] = [];
  const code = runCli(argv, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const shared = (name: string) => path.join(SHARED_HISTORIES_DIR, name);
const scratch = mkdtempSync(path.join(tmpdir(), 'kvcheck-'));

describe('kvcheck', () => {
  it('exits 0 for a valid history and infers format and model', () => {
    const result = run(shared('knossos/cas-register/good/memstress3-0.edn'));
    expect(result.code).toBe(EXIT_VALID);
    expect(result.out).toMatch(/VALID \(cas-register/);
  });

  it('exits 1 for an invalid one and prints one JSON object with --json', () => {
    const result = run(shared('porcupine/kv/c01-bad.txt'), '--json');
    expect(result.code).toBe(EXIT_INVALID);
    const json = JSON.parse(result.out);
    expect(json).toMatchObject({ valid: false, model: 'kv', anomalyTypes: ['nonlinearizable'], not: ['linearizable'], alsoNot: [] });
    expect(json.opCount).toBeGreaterThan(0);
    expect(typeof json.elapsedMs).toBe('number');
  });

  it('writes a self-contained HTML timeline with --html', () => {
    const out = path.join(scratch, 'timeline.html');
    expect(run(shared('knossos/cas-register/bad/cas-failure.edn'), '--html', out).code).toBe(EXIT_INVALID);
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain('cannot be linearized');
    expect(html).not.toMatch(/<script|src="http/);
  });

  it('exits 2 when the time limit is hit', () => {
    // etcd_002 needs a few hundred ms of search; 1 ms is never enough.
    expect(run(shared('porcupine/jepsen/etcd_002.log'), '--timeout-s', '0.001', '--json').code).toBe(EXIT_UNKNOWN);
  });

  it('takes --initial as EDN and --model explicitly', () => {
    const file = shared('knossos/multi-register/good/multi-register.edn');
    expect(run(file, '--model', 'multi-register', '--initial', '{:x 0 :y 0}').code).toBe(EXIT_VALID);
    // Without the initial state the history reads 0 from registers that were never written.
    expect(run(file, '--model', 'multi-register').code).toBe(EXIT_INVALID);
  });

  it('exits 3 with file, line and column on malformed input', () => {
    const bad = path.join(scratch, 'bad.edn');
    writeFileSync(bad, '[{:type :invoke :f :read :process 1}\n {:type :ok :f :read :process 1 :value}]');
    const result = run(bad);
    expect(result.code).toBe(EXIT_BAD_INPUT);
    expect(result.err).toContain(`${bad}:2:2:`);
  });

  it('exits 3 on usage errors, missing files and histories the model cannot read', () => {
    expect(run().code).toBe(EXIT_BAD_INPUT);
    expect(run('x.edn', '--model', 'nope').code).toBe(EXIT_BAD_INPUT);
    expect(run(path.join(scratch, 'missing.edn')).code).toBe(EXIT_BAD_INPUT);
    const orphan = path.join(scratch, 'orphan.jsonl');
    writeFileSync(orphan, '{"process":1,"type":"ok","f":"read","value":1}\n');
    const result = run(orphan, '--model', 'register');
    expect(result.code).toBe(EXIT_BAD_INPUT);
    expect(result.err).toMatch(/without a preceding :invoke/);
  });

  it('dispatches list-append histories to the Elle checker', () => {
    const result = run(shared('elle/si-without-g-single.edn'), '--json', '--consistency-models', 'snapshot-isolation,repeatable-read');
    const json = JSON.parse(result.out);
    expect(json.model).toBe('list-append');
    expect([EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN]).toContain(result.code);
  });

  it('runs as the package bin through npx', () => {
    const out = execFileSync('npx', ['--no-install', 'kvcheck', shared('porcupine/jepsen/etcd_025.log'), '--json'], {
      cwd: PROJECT_ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    expect(JSON.parse(out)).toMatchObject({ valid: true, model: 'cas-register' });
  }, 30_000);
});

describe('kvcheck on corrupted files', () => {
  const files = ['knossos/cas-register/bad/immediate-failure.edn', 'porcupine/jepsen/etcd_040.log', 'porcupine/kv/c01-bad.txt', 'knossos/mutex/bad/etcd.edn'];
  it.each(files)('%s: every mutation gets an exit code, never an exception', (name) => {
    const text = readFileSync(shared(name), 'utf8').slice(0, 3000);
    const random = seededRandom(name.length * 31);
    const file = path.join(scratch, path.basename(name));
    for (let i = 0; i < 40; i++) {
      // Swap a random stretch of the text for another one: breaks syntax and pairing alike.
      const a = Math.floor(random() * text.length);
      const b = Math.floor(random() * text.length);
      writeFileSync(file, text.slice(0, a) + text.slice(b, b + Math.floor(random() * 40)) + text.slice(a + Math.floor(random() * 40)));
      const { code } = run(file, '--timeout-s', '2');
      expect([EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN, EXIT_BAD_INPUT], `mutation ${i}`).toContain(code);
    }
  });
});
