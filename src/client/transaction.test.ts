import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvClient, KvClientError, StatusCode, text } from './index.js';
import { startTestCluster, type TestCluster } from './test-cluster.js';

describe('optimistic interactive transactions', () => {
  let cluster: TestCluster;
  let client: KvClient;

  beforeAll(async () => {
    cluster = await startTestCluster({ size: 3, tickIntervalMs: 20 });
    await cluster.waitForLeader();
    client = new KvClient({ endpoints: cluster.endpoints });
  }, 30_000);

  afterAll(async () => {
    client?.close();
    await cluster?.stop();
  });

  it('concurrent read-modify-write increments lose no update', async () => {
    await client.put('tx/ctr', '0');
    let committed = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = 0; i < 5; i++) {
          await client.transaction(
            async (tx) => {
              const v = Number(tx.text(await tx.get('tx/ctr')));
              tx.put('tx/ctr', String(v + 1));
            },
            { maxRetries: 100, baseBackoffMs: 2 },
          );
          committed++;
        }
      }),
    );
    expect(committed).toBe(40);
    expect(text((await client.get('tx/ctr')).value!)).toBe('40');
  }, 60_000);

  it('transfers keep the total and never go negative', async () => {
    const accounts = ['a', 'b', 'c', 'd'];
    for (const a of accounts) await client.put(`tx/acct/${a}`, '100');
    await Promise.all(
      Array.from({ length: 6 }, async (_, w) => {
        for (let i = 0; i < 6; i++) {
          const from = accounts[(w + i) % 4]!;
          const to = accounts[(w + i + 1) % 4]!;
          await client.transaction(
            async (tx) => {
              const fromBal = Number(tx.text(await tx.get(`tx/acct/${from}`)));
              const toBal = Number(tx.text(await tx.get(`tx/acct/${to}`)));
              const amount = 30;
              if (fromBal < amount) return;
              tx.put(`tx/acct/${from}`, String(fromBal - amount));
              tx.put(`tx/acct/${to}`, String(toBal + amount));
            },
            { maxRetries: 100, baseBackoffMs: 2 },
          );
        }
      }),
    );
    const r = await client.range({ key: 'tx/acct/', prefix: true });
    const balances = r.kvs.map((kv) => Number(text(kv.value)));
    expect(balances.reduce((a, b) => a + b, 0)).toBe(400);
    for (const b of balances) expect(b).toBeGreaterThanOrEqual(0);
  }, 60_000);

  it('reads see one snapshot, even when a key changes mid-transaction', async () => {
    await client.put('tx/s1', 'old1');
    await client.put('tx/s2', 'old2');
    const seen = await client.transaction(async (tx) => {
      const first = tx.text(await tx.get('tx/s1'));
      await client.put('tx/s2', 'new2'); // a concurrent writer, outside the transaction
      const second = tx.text(await tx.get('tx/s2'));
      return { first, second };
    });
    expect(seen).toEqual({ first: 'old1', second: 'old2' });
    expect(text((await client.get('tx/s2')).value!)).toBe('new2');
  });

  it('a transaction reads its own buffered writes, and they commit together', async () => {
    const own = await client.transaction(async (tx) => {
      tx.put('tx/o1', 'mine');
      tx.delete('tx/s1');
      return { o1: tx.text(await tx.get('tx/o1')), s1: tx.text(await tx.get('tx/s1')) };
    });
    expect(own).toEqual({ o1: 'mine', s1: undefined });
    expect(text((await client.get('tx/o1')).value!)).toBe('mine');
    expect((await client.get('tx/s1')).value).toBeUndefined();
  });

  it('a transaction whose reads keep changing gives up with ABORTED', async () => {
    await client.put('tx/hot', '0');
    let attempts = 0;
    const err = await client
      .transaction(
        async (tx) => {
          attempts++;
          await tx.get('tx/hot');
          await client.put('tx/hot', String(attempts)); // invalidates what we just read
          tx.put('tx/hot', 'never');
        },
        { maxRetries: 3, baseBackoffMs: 1 },
      )
      .then(
        () => undefined,
        (e: unknown) => e as KvClientError,
      );
    expect(err?.code).toBe(StatusCode.ABORTED);
    expect(attempts).toBe(4);
    expect(text((await client.get('tx/hot')).value!)).toBe('4');
  });
});
