// The README's commands are `npx kvctl`, `npx kvd` and `npx kvcheck` run in a fresh clone
// after `npm ci`. npm does not link a project's own bins into its node_modules/.bin, so npx
// found none of them ("sh: 1: kvctl: not found"); package.json now lists the project as its
// own devDependency (`"raftkv": "file:."`), which makes `npm ci` link them. This checks that
// the links exist, point at our shims, and start.

import { existsSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runNode } from './test-run.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('the bins the README runs with npx', () => {
  for (const bin of ['kvctl', 'kvd', 'kvcheck']) {
    it(`node_modules/.bin/${bin} is linked to src/cli/${bin}.mjs and starts`, async () => {
      const link = `${ROOT}node_modules/.bin/${bin}`;
      expect(existsSync(link), `${link} is missing: run npm ci (package.json must keep "raftkv": "file:.")`).toBe(true);
      expect(realpathSync(link)).toBe(realpathSync(`${ROOT}src/cli/${bin}.mjs`));
      // Through the link's own path (not its target), as npx runs it.
      const r = await runNode([link, '--help']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`Usage: ${bin} `);
    });
  }
});
