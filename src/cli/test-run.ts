// Test support: run `node <args>` to completion and collect what it printed. Not part of any
// shipped entry point (test-* files are exempt from the architecture rules).

import { spawn } from 'node:child_process';

export interface RunResult {
  /** Exit code; null when it was killed (after `killAfterMs`). */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A generous bound: on a loaded machine tsx start-up alone can take seconds. */
const DEFAULT_KILL_AFTER_MS = 45_000;

export function runNode(args: string[], opts: { cwd?: string; killAfterMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs ?? DEFAULT_KILL_AFTER_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
