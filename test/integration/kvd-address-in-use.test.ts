// kvd on an address another process holds: exit 1 with one plain line naming the address
// (it used to print grpc-js's "E No address added out of total 1 resolved ..." twice over).

import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runNode, type RunResult } from '../../src/cli/test-run.js';
import { freePorts } from '../../src/client/test-cluster.js';
import { defaultNodeConfig } from '../../src/server/config.js';
import { startNode } from '../../src/server/server.js';

const KVD = fileURLToPath(new URL('../../src/cli/kvd.mjs', import.meta.url));

let root: string;
let squatter: Server;
let taken: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'raftkv-addr-in-use-'));
  squatter = createServer();
  await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', () => resolve()));
  taken = `127.0.0.1:${(squatter.address() as { port: number }).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => squatter.close(() => resolve()));
  await rm(root, { recursive: true, force: true });
});

function kvd(args: string[]): Promise<RunResult> {
  return runNode([KVD, ...args]);
}

describe('kvd on an address in use', () => {
  for (const which of ['client', 'peer'] as const) {
    it(`names the ${which} address and exits 1`, async () => {
      const [free] = await freePorts(1);
      const other = `127.0.0.1:${free}`;
      const client = which === 'client' ? taken : other;
      const peer = which === 'peer' ? taken : other;
      const r = await kvd(['--id', '1', '--data-dir', join(root, which), '--client-addr', client, '--peer-addr', peer, '--peers', `1=${peer}/${client}`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`kvd: cannot start node 1: ${which} address ${taken} is already in use by another process (EADDRINUSE)\n`);
    });
  }
});

describe('startNode on a client address in use', () => {
  it('rejects, and leaves nothing running: the data directory opens again', async () => {
    const [peerPort, clientPort] = await freePorts(2);
    const dataDir = join(root, 'in-process');
    const peer = `127.0.0.1:${peerPort}`;
    const cfg = (client: string) => defaultNodeConfig({ id: 1, dataDir, clientAddr: client, peerAddr: peer, initialCluster: [{ id: 1, peerAddr: peer, clientAddr: client }], tickIntervalMs: 20, logLevel: 'silent' });
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    await new Promise((r) => setTimeout(r, 300)); // let earlier tests' timers run out
    const before = timers();
    await expect(startNode(cfg(taken))).rejects.toThrow(`client address ${taken} is already in use`);
    // A host left running keeps its tick timer (and ticks on a closed db). The lease keeper's
    // timer is unref'd, so it does not show here.
    await new Promise((r) => setTimeout(r, 200));
    expect(timers()).toBe(before);
    const node = await startNode(cfg(`127.0.0.1:${clientPort}`));
    await node.stop();
  });
});
