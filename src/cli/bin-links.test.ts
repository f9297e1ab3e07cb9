// The README's commands are `npx kvctl`, `npx kvd` and `npx kvcheck` run in a fresh clone
// after `npm ci`. npm does not link a project's own bins into its node_modules/.bin, so npx
// found none of them ("sh: 1: kvctl: not found"); package.json now lists the project as its
// own devDependency (`"raftkv": "file:."`), which makes `npm ci` link them. This checks that
// the links exist, point at our shims, and start.

import { spawn } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SPAWN_KILL_MS = 45_000;

function run(file: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // Through the link's own path (not its target), as npx runs it.
    const child = spawn(process.execPath, [file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    const timer = setTimeout(() => child.kill('SIGKILL'), SPAWN_KILL_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('the bins the README runs with npx', () => {
  for (const bin of ['kvctl', 'kvd', 'kvcheck']) {
    it(`node_modules/.bin/${bin} is linked to src/cli/${bin}.mjs and starts`, async () => {
      const link = `${ROOT}node_modules/.bin/${bin}`;
      expect(existsSync(link), `${link} is missing: run npm ci (package.json must keep "raftkv": "file:.")`).toBe(true);
      expect(realpathSync(link)).toBe(realpathSync(`${ROOT}src/cli/${bin}.mjs`));
      const r = await run(link, ['--help']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`Usage: ${bin} `);
    });
  }
});
