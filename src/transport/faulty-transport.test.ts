import { afterEach, describe, expect, it } from 'vitest';
import { emptyMessage, MessageType, type Message } from '../raft/index.js';
import { FaultyTransport, InvalidFaultConfigError, MemoryNetwork, type Transport } from './index.js';

const hb = (from: number, to: number, sentTick = 0): Message => emptyMessage({ type: MessageType.Heartbeat, from, to, sentTick });
const settle = (ms = 20): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('FaultyTransport over MemoryTransport', () => {
  const open: Transport[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((t) => t.close()));
  });

  function cluster(random?: () => number): { f: FaultyTransport[]; got: Message[][] } {
    const net = new MemoryNetwork();
    const f: FaultyTransport[] = [];
    const got: Message[][] = [];
    for (let id = 1; id <= 3; id++) {
      const t = new FaultyTransport(net.join(id), random);
      const inbox: Message[] = [];
      t.onMessage((ms) => inbox.push(...ms));
      for (let p = 1; p <= 3; p++) if (p !== id) t.addPeer(p, `mem:${p}`);
      f.push(t);
      got.push(inbox);
      open.push(t);
    }
    return { f, got };
  }

  it('delivers everything without faults', async () => {
    const { f, got } = cluster();
    f[0]!.send([hb(1, 2), hb(1, 3)]);
    await settle();
    expect(got[1]).toHaveLength(1);
    expect(got[2]).toHaveLength(1);
  });

  it('drops with the configured probability (seeded)', async () => {
    let x = 0;
    const { f, got } = cluster(() => ((x = (x + 0.37) % 1), x)); // deterministic sequence
    f[0]!.setFaults({ dropProbability: 0.5 });
    f[0]!.send(Array.from({ length: 100 }, (_, i) => hb(1, 2, i)));
    await settle();
    expect(got[1]!.length).toBeGreaterThan(30);
    expect(got[1]!.length).toBeLessThan(70);
    f[0]!.setFaults({ dropProbability: 1 });
    f[0]!.send([hb(1, 2)]);
    await settle();
    const before = got[1]!.length;
    f[0]!.clearFaults();
    f[0]!.send([hb(1, 2)]);
    await settle();
    expect(got[1]!.length).toBe(before + 1);
  });

  it('partitions both ways, or one way in either direction', async () => {
    const { f, got } = cluster();
    f[0]!.setFaults({ partitionFrom: [2] });
    f[0]!.send([hb(1, 2), hb(1, 3)]);
    f[1]!.send([hb(2, 1)]);
    await settle();
    expect(got[1]).toHaveLength(0); // 1 -> 2 cut
    expect(got[2]).toHaveLength(1); // 1 -> 3 fine
    expect(got[0]).toHaveLength(0); // 2 -> 1 cut at the receiver

    f[0]!.setFaults({ partitionFrom: [2], partitionDirection: 'outbound' });
    f[0]!.send([hb(1, 2)]);
    f[1]!.send([hb(2, 1)]);
    await settle();
    expect(got[1]).toHaveLength(0);
    expect(got[0]).toHaveLength(1);

    f[0]!.setFaults({ partitionFrom: [2], partitionDirection: 'inbound' });
    f[0]!.send([hb(1, 2)]);
    f[1]!.send([hb(2, 1)]);
    await settle();
    expect(got[1]).toHaveLength(1);
    expect(got[0]).toHaveLength(1);
  });

  it('delays outbound messages', async () => {
    const { f, got } = cluster();
    f[0]!.setFaults({ delayMs: 150 });
    f[0]!.send([hb(1, 2)]);
    await settle(50);
    expect(got[1]).toHaveLength(0);
    await settle(200);
    expect(got[1]).toHaveLength(1);
  });

  it('rejects out-of-range settings and keeps the old ones', () => {
    const { f } = cluster();
    f[0]!.setFaults({ delayMs: 5 });
    expect(() => f[0]!.setFaults({ dropProbability: 1.5 })).toThrow(InvalidFaultConfigError);
    expect(() => f[0]!.setFaults({ delayMs: -1 })).toThrow(InvalidFaultConfigError);
    expect(f[0]!.faults().delayMs).toBe(5);
  });
});
