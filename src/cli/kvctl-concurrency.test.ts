// kvctl lease / lock / elect against an in-process cluster (runKvctl in this process).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster } from '../client/test-cluster.js';
import { runKvctl, type KvctlIo } from './kvctl.js';

let cluster: TestCluster;

async function run(args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: KvctlIo = { out: (t) => out.push(t), err: (t) => err.push(t), readStdin: async () => '' };
  const code = await runKvctl(['--endpoints', cluster.endpoints.join(','), ...args], io);
  return { code, out, err };
}

describe('kvctl lease, lock, elect', () => {
  beforeAll(async () => {
    cluster = await startTestCluster({ size: 3 });
    await cluster.waitForLeader();
  }, 30_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('lease grant | keepalive --once | ttl | revoke, put --lease; bad input', async () => {
    const g = await run(['--json', 'lease', 'grant', '30']);
    expect(g.code, g.err.join('\n')).toBe(0);
    const id = (JSON.parse(g.out[0]!) as { id: number }).id;
    expect((await run(['put', 'kc/a', '1', '--lease', String(id)])).code).toBe(0);
    const t = await run(['--json', 'lease', 'ttl', String(id), '--keys']);
    expect(JSON.parse(t.out[0]!)).toMatchObject({ id, grantedTtl: 30, keys: ['kc/a'] });
    expect((await run(['lease', 'keepalive', String(id), '--once'])).out[0]).toContain('TTL 30');
    expect((await run(['lease', 'revoke', String(id)])).code).toBe(0);
    expect((await run(['get', 'kc/a'])).out).toEqual([]);
    const nf = await run(['lease', 'ttl', String(id)]);
    expect(nf.code).toBe(1);
    expect(nf.err.join('\n')).toContain('NOT_FOUND');
    expect((await run(['lease', 'grant', '0'])).code).toBe(2);
  });

  it('lock NAME -- command runs the command holding the lock with RAFTKV_FENCING_TOKEN, exit code passed through', async () => {
    const r = await run(['lock', 'kc-lock', '--', process.execPath, '-e', 'console.log("token=" + process.env.RAFTKV_FENCING_TOKEN); process.exit(3)']);
    expect(r.code).toBe(3);
    const token = Number(/token=(\d+)/.exec(r.out.join('\n'))?.[1]);
    expect(token).toBeGreaterThan(0);
    // released afterwards: a second run gets a newer token at once
    const r2 = await run(['lock', 'kc-lock', '--', process.execPath, '-e', 'console.log("token=" + process.env.RAFTKV_FENCING_TOKEN)']);
    expect(r2.code).toBe(0);
    expect(Number(/token=(\d+)/.exec(r2.out.join('\n'))?.[1])).toBeGreaterThan(token);
  }, 20_000);

  it('elect --leader reports no leader, then the campaigner', async () => {
    const none = await run(['elect', 'kc-el', '--leader']);
    expect(none.code).toBe(1);
    expect(none.out[0]).toBe('no leader');
  });
});
