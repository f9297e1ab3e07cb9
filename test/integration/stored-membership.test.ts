// A data directory keeps the membership it applied; `--peers` only bootstraps (as etcd's
// --initial-cluster). Restarting on other ports therefore left a cluster in elections with no
// word of why. The node now reports where the flags disagree with what it stored, and kvd
// prints it.

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from '../../src/client/test-cluster.js';
import { defaultNodeConfig, type PeerSpec } from '../../src/server/config.js';
import { memberAddressConflicts } from '../../src/server/node-host.js';
import { startNode, type RunningNode } from '../../src/server/server.js';

const KVD = fileURLToPath(new URL('../../src/cli/kvd.mjs', import.meta.url));
const WAIT_MS = 20_000;

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'raftkv-stored-membership-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A one-node cluster at fresh ports; resolves once it applied its bootstrap membership. */
async function startOne(dataDir: string, spec: PeerSpec): Promise<RunningNode> {
  const node = await startNode(defaultNodeConfig({ id: 1, dataDir, clientAddr: spec.clientAddr, peerAddr: spec.peerAddr, initialCluster: [spec], tickIntervalMs: 20, logLevel: 'silent' }));
  await until(() => node.host.sm.appliedIndex() >= 1, 'the bootstrap membership to be applied');
  return node;
}

async function specAtFreePorts(): Promise<PeerSpec> {
  const [c, p] = await freePorts(2);
  return { id: 1, clientAddr: `127.0.0.1:${c}`, peerAddr: `127.0.0.1:${p}` };
}

describe('memberAddressConflicts', () => {
  const stored = new Map([
    [1, { peerAddr: 'h:1', clientAddr: 'h:11' }],
    [2, { peerAddr: 'h:2', clientAddr: 'h:12' }],
  ]);

  it('is empty when --peers matches, or names ids the directory does not hold', () => {
    expect(memberAddressConflicts(stored, [{ id: 1, peerAddr: 'h:1', clientAddr: 'h:11' }, { id: 3, peerAddr: 'x', clientAddr: 'y' }])).toEqual([]);
  });

  it('lists each member whose peer or client address differs', () => {
    const c = memberAddressConflicts(stored, [
      { id: 1, peerAddr: 'h:1', clientAddr: 'other' },
      { id: 2, peerAddr: 'other', clientAddr: 'h:12' },
    ]);
    expect(c.map((x) => x.id)).toEqual([1, 2]);
    expect(c[1]).toEqual({ id: 2, stored: { peerAddr: 'h:2', clientAddr: 'h:12' }, given: { peerAddr: 'other', clientAddr: 'h:12' } });
  });
});

describe('a node restarted with other addresses than it stored', () => {
  it('keeps the stored ones and says where --peers disagrees', async () => {
    const dataDir = join(root, 'in-process');
    const first = await specAtFreePorts();
    let node = await startOne(dataDir, first);
    expect(node.host.memberAddressConflicts).toEqual([]);
    await node.stop();

    node = await startOne(dataDir, first);
    expect(node.host.memberAddressConflicts, 'same addresses again').toEqual([]);
    await node.stop();

    const moved = await specAtFreePorts();
    node = await startNode(defaultNodeConfig({ id: 1, dataDir, clientAddr: moved.clientAddr, peerAddr: moved.peerAddr, initialCluster: [moved], tickIntervalMs: 20, logLevel: 'silent' }));
    try {
      expect(node.host.memberAddressConflicts).toEqual([{ id: 1, stored: { peerAddr: first.peerAddr, clientAddr: first.clientAddr }, given: { peerAddr: moved.peerAddr, clientAddr: moved.clientAddr } }]);
    } finally {
      await node.stop();
    }
  });

  it('kvd prints the disagreement on stderr', async () => {
    const dataDir = join(root, 'kvd');
    const first = await specAtFreePorts();
    const node = await startOne(dataDir, first);
    await node.stop();

    const moved = await specAtFreePorts();
    const child = spawn(process.execPath, [KVD, '--id', '1', '--data-dir', dataDir, '--client-addr', moved.clientAddr, '--peer-addr', moved.peerAddr, '--peers', `1=${moved.peerAddr}/${moved.clientAddr}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      await until(() => stderr.includes('warning') || child.exitCode !== null, 'kvd to start');
      expect(stderr).toContain(`kvd: warning: ${dataDir} holds a membership with other addresses than --peers`);
      expect(stderr).toContain(`node 1 is stored at ${first.peerAddr}/${first.clientAddr}, --peers says ${moved.peerAddr}/${moved.clientAddr}`);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));
    }
  });
});
