import { afterEach, describe, expect, it } from 'vitest';
import { emptyMessage, MessageType, type Message } from '../raft/index.js';
import { GrpcTransport, TcpTransport, type GrpcTransportOptions, type TcpTransportOptions, type Transport } from './index.js';

const STEP_TIMEOUT_MS = 5_000;

/** Decoded bytes are Buffers (a Uint8Array subclass); compare contents, not classes. */
function plain(m: Message): unknown {
  return { ...m, context: [...m.context], entries: m.entries.map((e) => ({ ...e, data: [...e.data] })) };
}

/** Resolves when `pred` holds, polling; fails after a bounded time. */
async function waitFor(pred: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** What both peer transports offer beyond Transport. */
type PeerTransport = Transport & { port: number; droppedMessages(peer: number): number };
type Options = GrpcTransportOptions & TcpTransportOptions;
const KINDS: Array<[string, (o: Options) => Promise<PeerTransport>]> = [
  ['GrpcTransport', (o) => GrpcTransport.start(o)],
  ['TcpTransport', (o) => TcpTransport.start(o)],
];

// The same contract for both: the node host cannot tell which one it runs on.
describe.each(KINDS)('%s', (_name, start) => {
  const open: PeerTransport[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((t) => t.close()));
  });

  async function node(id: number, extra: Partial<Options> = {}): Promise<{ t: PeerTransport; got: Message[]; batches: number[] }> {
    const t = await start({ id, listenAddr: '127.0.0.1:0', reconnectInitialMs: 20, reconnectMaxMs: 100, ...extra });
    open.push(t);
    const got: Message[] = [];
    const batches: number[] = [];
    t.onMessage((ms) => {
      batches.push(ms.length);
      got.push(...ms);
    });
    return { t, got, batches };
  }
  const addr = (t: PeerTransport): string => `127.0.0.1:${t.port}`;

  it('delivers messages with entries between three nodes, batched per event-loop turn', async () => {
    const [a, b, c] = [await node(1), await node(2), await node(3)];
    for (const x of [a, b, c]) for (const y of [a, b, c]) x.t.addPeer(open.indexOf(y.t) + 1, addr(y.t));
    const entries = Array.from({ length: 100 }, (_, i) => ({ term: 2, index: 10 + i, type: 0, data: Uint8Array.of(i, i + 1) }));
    const app = emptyMessage({ type: MessageType.App, from: 1, to: 2, term: 2, logTerm: 2, index: 9, commit: 7, entries, context: Uint8Array.of(1, 2, 3) });
    const burst = Array.from({ length: 50 }, (_, i) => emptyMessage({ type: MessageType.Heartbeat, from: 1, to: 3, term: 2, sentTick: i + 1 }));
    a.t.send([app, ...burst]);
    await waitFor(() => b.got.length === 1 && c.got.length === 50, 'delivery');
    expect(plain(b.got[0]!)).toEqual(plain(app));
    expect(c.got.map((m) => m.sentTick)).toEqual(burst.map((m) => m.sentTick));
    expect(c.batches).toEqual([50]); // one send() turn -> one streamed batch
    c.t.send([emptyMessage({ type: MessageType.HeartbeatResp, from: 3, to: 1, term: 2, sentTick: 50 })]);
    await waitFor(() => a.got.length === 1, 'reply');
    expect(a.got[0]!.from).toBe(3);
  });

  it('sends a snapshot in chunks and reports its status', async () => {
    const a = await node(1, { snapshotChunkBytes: 1000 });
    const b = await node(2);
    a.t.addPeer(2, addr(b.t));
    const statuses: [number, boolean][] = [];
    a.t.onSnapshotStatus((p, ok) => statuses.push([p, ok]));
    const data = Uint8Array.from({ length: 3500 }, (_, i) => i % 251);
    const snap = emptyMessage({ type: MessageType.Snap, from: 1, to: 2, term: 3, snapshot: { metadata: { index: 40, term: 3, confState: { voters: [1, 2], learners: [5] } }, data } });
    a.t.send([snap]);
    await waitFor(() => statuses.length === 1, 'snapshot status');
    expect(statuses).toEqual([[2, true]]);
    expect(b.got).toHaveLength(1);
    expect(b.got[0]!.snapshot!.metadata).toEqual(snap.snapshot!.metadata);
    expect(Buffer.compare(b.got[0]!.snapshot!.data, data)).toBe(0);
  });

  it('refuses a snapshot above maxSnapshotBytes', async () => {
    const a = await node(1, { snapshotChunkBytes: 100 });
    const b = await node(2, { maxSnapshotBytes: 1000 });
    a.t.addPeer(2, addr(b.t));
    const statuses: boolean[] = [];
    a.t.onSnapshotStatus((_p, ok) => statuses.push(ok));
    a.t.send([emptyMessage({ type: MessageType.Snap, from: 1, to: 2, snapshot: { metadata: { index: 1, term: 1, confState: { voters: [1], learners: [] } }, data: new Uint8Array(5000) } })]);
    await waitFor(() => statuses.length === 1, 'snapshot status');
    expect(statuses).toEqual([false]);
    expect(b.got).toHaveLength(0);
  });

  it('reports an unreachable peer, then reconnects when it comes up', async () => {
    const a = await node(1);
    // Reserve a port, then close it so nothing listens there yet.
    const probe = await start({ id: 9, listenAddr: '127.0.0.1:0' });
    const port = probe.port;
    await probe.close();
    const unreachable: number[] = [];
    a.t.onUnreachable((p) => unreachable.push(p));
    a.t.addPeer(2, `127.0.0.1:${port}`);
    a.t.send([emptyMessage({ type: MessageType.Heartbeat, from: 1, to: 2, term: 1 })]);
    await waitFor(() => unreachable.length > 0, 'unreachable report');
    expect(unreachable[0]).toBe(2);
    const b = await node(2, { listenAddr: `127.0.0.1:${port}` });
    // Raft keeps sending; once the peer is up, messages flow again on a new stream.
    await waitFor(() => {
      a.t.send([emptyMessage({ type: MessageType.Heartbeat, from: 1, to: 2, term: 1 })]);
      return b.got.length > 0;
    }, 'delivery after reconnect');
  });

  it('bounds the per-peer queue: overflow is dropped and reported', async () => {
    const a = await node(1, { maxQueuedMessages: 10 });
    const b = await node(2);
    a.t.addPeer(2, addr(b.t));
    const unreachable: number[] = [];
    a.t.onUnreachable((p) => unreachable.push(p));
    a.t.send(Array.from({ length: 25 }, (_, i) => emptyMessage({ type: MessageType.Heartbeat, from: 1, to: 2, sentTick: i })));
    expect(a.t.droppedMessages(2)).toBe(15);
    expect(unreachable.length).toBe(15);
    await waitFor(() => b.got.length === 10, 'the queued ten');
    expect(b.got.map((m) => m.sentTick)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('drops messages to unknown or removed peers', async () => {
    const a = await node(1);
    const b = await node(2);
    a.t.addPeer(2, addr(b.t));
    a.t.removePeer(2);
    a.t.send([emptyMessage({ type: MessageType.Heartbeat, from: 1, to: 2 }), emptyMessage({ type: MessageType.Heartbeat, from: 1, to: 7 })]);
    await new Promise((r) => setTimeout(r, 100));
    expect(b.got).toHaveLength(0);
  });
});
