// `npm run cluster -- start|stop` in the background. `stop` used to look only at the pid files
// of nodes 1..--nodes (default 3), so after `start --nodes 5` a plain `stop` left nodes 4 and 5
// running; and a stale pid file could make it signal whatever process had the pid since.

import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runNode, type RunResult } from '../../src/cli/test-run.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SCRIPT = join(ROOT, 'cluster/cluster.ts');
const RUN_KILL_MS = 60_000;
const NODES = 4;

let root: string;
const started: number[] = [];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function cluster(args: string[]): Promise<RunResult> {
  return runNode(['--import', 'tsx', SCRIPT, ...args], { cwd: ROOT, killAfterMs: RUN_KILL_MS });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A base port with NODES free ports above it, and another NODES above base + 100. */
async function freeBase(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 30_000 + Math.floor(Math.random() * 20_000);
    const ports = Array.from({ length: NODES }, (_, i) => [base + i, base + 100 + i]).flat();
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return base;
  }
  throw new Error('no free port range found');
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'raftkv-cluster-script-'));
});

afterAll(async () => {
  for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL');
  await rm(root, { recursive: true, force: true });
});

describe('cluster script, background', () => {
  it('stop stops every node start started, whatever --nodes says', async () => {
    const base = await freeBase();
    const runDir = join(root, 'run');
    const up = await cluster(['start', '--nodes', String(NODES), '--base-client-port', String(base), '--base-peer-port', String(base + 100), '--data-dir', join(root, 'data'), '--run-dir', runDir, '--tick-ms', '20']);
    const pids = readdirSync(runDir)
      .filter((f) => f.endsWith('.pid'))
      .map((f) => Number(readFileSync(join(runDir, f), 'utf8')));
    started.push(...pids);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toContain(`${NODES}-node cluster on loopback`);
    expect(pids).toHaveLength(NODES);
    expect(pids.every(alive)).toBe(true);

    const down = await cluster(['stop', '--run-dir', runDir]);
    expect(down.code, down.stderr).toBe(0);
    for (let id = 1; id <= NODES; id++) expect(down.stdout).toContain(`stopped node ${id} `);
    expect(pids.filter(alive)).toEqual([]);
    expect(readdirSync(runDir).filter((f) => f.endsWith('.pid'))).toEqual([]);
  });

  it('leaves a process alone whose pid a stale pid file names', async () => {
    const runDir = join(root, 'stale');
    const bystander = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    started.push(bystander.pid!);
    await import('node:fs/promises').then((fs) => fs.mkdir(runDir, { recursive: true }));
    writeFileSync(join(runDir, 'n1.pid'), String(bystander.pid));
    const down = await cluster(['stop', '--run-dir', runDir]);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toContain(`node 1 (pid ${bystander.pid}) was not running (stale pid file removed)`);
    expect(alive(bystander.pid!)).toBe(true);
    expect(existsSync(join(runDir, 'n1.pid'))).toBe(false);
    bystander.kill('SIGKILL');
  });
});
