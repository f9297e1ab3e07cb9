// A cluster serves the same on either peer transport (config.ts peerTransport): elections,
// replication, follower ReadIndex reads and leader transfer all cross the peer protocol.

import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { KvClient, text } from '../../src/client/index.js';
import { startTestCluster, type TestCluster } from '../../src/client/test-cluster.js';
import { PEER_TRANSPORT_KINDS } from '../../src/server/config.js';

/** An HTTP/2 client preface plus an empty SETTINGS frame: what a gRPC client sends first. */
const HTTP2_HELLO = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

/**
 * Which protocol a peer port speaks: a gRPC (HTTP/2) server answers the preface with its own
 * SETTINGS, the TCP transport closes the connection without a byte.
 */
function speaksHttp2(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(HTTP2_HELLO));
    s.once('data', () => {
      s.destroy();
      resolve(true);
    });
    s.once('close', () => resolve(false));
    s.once('error', reject);
  });
}

describe.each(PEER_TRANSPORT_KINDS.map((k) => [k]))('a 3-node cluster on the %s peer transport', (kind) => {
  let cluster: TestCluster | undefined;
  const clients: KvClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await cluster?.stop();
    cluster = undefined;
  });

  it('replicates writes, serves linearizable reads on every member, and survives a leader transfer', async () => {
    cluster = await startTestCluster({ size: 3, tickIntervalMs: 20, overrides: { peerTransport: kind } });
    const leader = await cluster.waitForLeader();
    for (const n of cluster.nodes.values()) expect(await speaksHttp2(n.peerPort)).toBe(kind === 'grpc');
    const client = new KvClient({ endpoints: cluster.endpoints, defaultTimeoutMs: 5_000 });
    clients.push(client);
    await Promise.all(Array.from({ length: 40 }, (_, i) => client.put(`k${i}`, `v${i}`)));
    // One client per member, no fallback to another: each read's ReadIndex runs on that member.
    for (const addr of cluster.endpoints) {
      const pinned = new KvClient({ endpoints: [addr], defaultTimeoutMs: 5_000 });
      clients.push(pinned);
      const got = await pinned.get('k39');
      expect(got && text(got.value)).toBe('v39');
    }
    const target = cluster.specs.map((s) => s.id).find((id) => id !== leader)!;
    await client.leaderTransfer(target);
    expect(await cluster.waitForLeader()).toBe(target);
    await client.put('after', 'transfer');
    const after = await client.get('after');
    expect(after && text(after.value)).toBe('transfer');
  });
});
