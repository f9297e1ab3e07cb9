// What only the TCP peer transport has to get right: frames from a confused or hostile
// connection, and snapshot transfers that end badly. (The shared contract is in peer-transport.test.ts.)

import net from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { emptyMessage, MessageType, type Message } from '../raft/index.js';
import { decodeAck, encodeBatch, encodeChunk } from './codec.js';
import { FrameKind, FrameReader, frameBytes } from './tcp-framing.js';
import { TcpTransport, type TcpTransportOptions } from './tcp-transport.js';
import { GrpcTransport } from './grpc-transport.js';

const STEP_TIMEOUT_MS = 5_000;

async function waitFor(pred: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('TcpTransport', () => {
  const open: Array<{ close(): unknown }> = [];
  afterEach(async () => {
    for (const x of open.splice(0)) await x.close();
  });

  async function node(id: number, extra: Partial<TcpTransportOptions> = {}): Promise<{ t: TcpTransport; got: Message[] }> {
    const t = await TcpTransport.start({ id, listenAddr: '127.0.0.1:0', reconnectInitialMs: 20, reconnectMaxMs: 100, ...extra });
    open.push(t);
    const got: Message[] = [];
    t.onMessage((ms) => got.push(...ms));
    return { t, got };
  }

  /** A raw client connection to `t`; resolves once connected. Collects what it is sent and whether it was closed. */
  async function raw(t: TcpTransport): Promise<{ s: net.Socket; frames: Array<[number, Buffer]>; closed: () => boolean }> {
    const s = net.connect({ host: '127.0.0.1', port: t.port });
    open.push({ close: () => s.destroy() });
    let closed = false;
    const frames: Array<[number, Buffer]> = [];
    const reader = new FrameReader(1 << 20, (kind, payload) => frames.push([kind, payload]));
    s.on('data', (b: Buffer) => reader.push(b));
    s.on('error', () => {});
    s.on('close', () => (closed = true));
    await new Promise((r) => s.once('connect', r));
    return { s, frames, closed: () => closed };
  }

  const heartbeat = (sentTick: number): Message => emptyMessage({ type: MessageType.Heartbeat, from: 3, to: 1, term: 1, sentTick });

  it('closes a connection that sends an undecodable batch, and keeps serving the others', async () => {
    const a = await node(1);
    const bad = await raw(a.t);
    bad.s.write(frameBytes(FrameKind.Batch, Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff)));
    await waitFor(bad.closed, 'the bad connection closed');
    const good = await raw(a.t);
    good.s.write(frameBytes(FrameKind.Batch, encodeBatch({ from: 3, messages: [heartbeat(7)] })));
    await waitFor(() => a.got.length === 1, 'delivery on a good connection');
    expect(a.got[0]!.sentTick).toBe(7);
  });

  it('closes a connection whose frame header announces more than maxFrameBytes', async () => {
    const a = await node(1, { maxFrameBytes: 1000 });
    const c = await raw(a.t);
    const head = Buffer.alloc(5);
    head.writeUInt32BE(1001, 0);
    head[4] = FrameKind.Batch;
    c.s.write(head);
    await waitFor(c.closed, 'the connection closed');
    expect(a.got).toEqual([]);
  });

  it('closes a connection that sends an unknown frame kind', async () => {
    const a = await node(1);
    const c = await raw(a.t);
    c.s.write(frameBytes(99 as FrameKind, Uint8Array.of(1)));
    await waitFor(c.closed, 'the connection closed');
  });

  it('answers a snapshot whose chunks arrive out of order with a refusal, delivering nothing', async () => {
    const a = await node(1);
    const c = await raw(a.t);
    const header = emptyMessage({ type: MessageType.Snap, from: 3, to: 1, term: 2, snapshot: { metadata: { index: 9, term: 2, confState: { voters: [1, 3], learners: [] } }, data: new Uint8Array(0) } });
    c.s.write(frameBytes(FrameKind.SnapshotChunk, encodeChunk({ message: header, totalBytes: 10, offset: 0, data: new Uint8Array(4) })));
    c.s.write(frameBytes(FrameKind.SnapshotChunk, encodeChunk({ totalBytes: 10, offset: 6, data: new Uint8Array(4) })));
    await waitFor(() => c.frames.length === 1, 'the ack');
    expect(c.frames[0]![0]).toBe(FrameKind.SnapshotAck);
    const ack = decodeAck(c.frames[0]![1]);
    expect(ack.accepted).toBe(false);
    expect(ack.error).toMatch(/chunk at 6 out of order/);
    expect(a.got).toEqual([]);
  });

  it('reports a snapshot as failed when the receiver closes before acknowledging it', async () => {
    const server = net.createServer((s) => s.once('data', () => s.destroy()));
    open.push({ close: () => new Promise((r) => server.close(r)) });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const a = await node(1);
    const statuses: Array<[number, boolean]> = [];
    a.t.onSnapshotStatus((p, ok) => statuses.push([p, ok]));
    a.t.addPeer(2, `127.0.0.1:${(server.address() as net.AddressInfo).port}`);
    a.t.send([emptyMessage({ type: MessageType.Snap, from: 1, to: 2, snapshot: { metadata: { index: 1, term: 1, confState: { voters: [1], learners: [] } }, data: new Uint8Array(100) } })]);
    await waitFor(() => statuses.length === 1, 'snapshot status');
    expect(statuses).toEqual([[2, false]]);
  });

  it('reports a snapshot as failed when no answer comes within snapshotDeadlineMs', async () => {
    const server = net.createServer((s) => s.on('data', () => {}));
    const accepted: net.Socket[] = [];
    server.on('connection', (s) => accepted.push(s));
    open.push({ close: () => new Promise((r) => (accepted.forEach((s) => s.destroy()), server.close(r))) });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const a = await node(1, { snapshotDeadlineMs: 150 });
    const statuses: boolean[] = [];
    a.t.onSnapshotStatus((_p, ok) => statuses.push(ok));
    a.t.addPeer(2, `127.0.0.1:${(server.address() as net.AddressInfo).port}`);
    const startedMs = Date.now();
    a.t.send([emptyMessage({ type: MessageType.Snap, from: 1, to: 2, snapshot: { metadata: { index: 1, term: 1, confState: { voters: [1], learners: [] } }, data: new Uint8Array(100) } })]);
    await waitFor(() => statuses.length === 1, 'snapshot status');
    expect(statuses).toEqual([false]);
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(140);
  });

  it('drops a connection the peer stops reading from after stalledWriteMs, and opens a new one', async () => {
    const accepted: net.Socket[] = [];
    const server = net.createServer((s) => {
      accepted.push(s);
      s.pause(); // accept, never read: the sender's buffers fill up
    });
    open.push({ close: () => new Promise((r) => (accepted.forEach((s) => s.destroy()), server.close(r))) });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const a = await node(1, { stalledWriteMs: 200 });
    const unreachable: number[] = [];
    a.t.onUnreachable((p) => unreachable.push(p));
    a.t.addPeer(2, `127.0.0.1:${(server.address() as net.AddressInfo).port}`);
    const big = Array.from({ length: 64 }, (_, i) => ({ term: 1, index: i + 1, type: 0, data: new Uint8Array(256 * 1024) }));
    a.t.send([emptyMessage({ type: MessageType.App, from: 1, to: 2, term: 1, entries: big })]);
    await waitFor(() => unreachable.length > 0, 'the stalled connection reported');
    expect(accepted).toHaveLength(1);
    await waitFor(() => {
      a.t.send([emptyMessage({ type: MessageType.Heartbeat, from: 1, to: 2, term: 1 })]);
      return accepted.length === 2;
    }, 'a new connection');
  });

  it('closes a connection that opens with the HTTP/2 preface (a gRPC peer transport), and keeps serving', async () => {
    const a = await node(1);
    const grpcPeer = await GrpcTransport.start({ id: 3, listenAddr: '127.0.0.1:0' });
    open.push(grpcPeer);
    grpcPeer.addPeer(1, `127.0.0.1:${a.t.port}`);
    for (let i = 0; i < 5; i++) {
      grpcPeer.send([heartbeat(i)]);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(a.got).toEqual([]);
    const good = await raw(a.t);
    good.s.write(frameBytes(FrameKind.Batch, encodeBatch({ from: 3, messages: [heartbeat(9)] })));
    await waitFor(() => a.got.length === 1, 'delivery on a good connection');
  });

  it('says so when the peer it sends to answers with HTTP/2 (runs the gRPC peer transport)', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (s: string) => void lines.push(s) });
    const a = await node(1, { logger });
    const grpcPeer = await GrpcTransport.start({ id: 2, listenAddr: '127.0.0.1:0' });
    open.push(grpcPeer);
    const got: Message[] = [];
    grpcPeer.onMessage((ms) => got.push(...ms));
    a.t.addPeer(2, `127.0.0.1:${grpcPeer.port}`);
    await waitFor(() => {
      a.t.send([emptyMessage({ type: MessageType.Heartbeat, from: 1, to: 2, term: 1 })]);
      return lines.some((l) => l.includes('it runs --peer-transport grpc'));
    }, 'the mismatch named in the log');
    expect(got).toEqual([]);
  });

  it('splits a large send into frames of about maxBatchBytes', async () => {
    const a = await node(1, { maxBatchBytes: 2_000 });
    const b = await node(2);
    const batches: number[] = [];
    b.t.onMessage((ms) => batches.push(ms.length));
    a.t.addPeer(2, `127.0.0.1:${b.t.port}`);
    const apps = Array.from({ length: 10 }, (_, i) => emptyMessage({ type: MessageType.App, from: 1, to: 2, term: 1, index: i, entries: [{ term: 1, index: i + 1, type: 0, data: new Uint8Array(500) }] }));
    a.t.send(apps);
    await waitFor(() => batches.reduce((x, y) => x + y, 0) === 10, 'all ten');
    expect(batches.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...batches)).toBeLessThanOrEqual(4);
  });

  it('refuses a snapshot beyond maxInboundSnapshots at once, and drops one not completed within snapshotDeadlineMs', async () => {
    const a = await node(1, { maxInboundSnapshots: 1, snapshotDeadlineMs: 300 });
    const header = emptyMessage({ type: MessageType.Snap, from: 3, to: 1, term: 2, snapshot: { metadata: { index: 9, term: 2, confState: { voters: [1, 3], learners: [] } }, data: new Uint8Array(0) } });
    const firstChunk = frameBytes(FrameKind.SnapshotChunk, encodeChunk({ message: header, totalBytes: 10, offset: 0, data: new Uint8Array(4) }));
    const slow = await raw(a.t);
    slow.s.write(firstChunk);
    await new Promise((r) => setTimeout(r, 50));
    const second = await raw(a.t);
    second.s.write(firstChunk);
    await waitFor(() => second.frames.length === 1, 'the refusal');
    expect(decodeAck(second.frames[0]![1]).error).toMatch(/already receiving 1 snapshots \(maxInboundSnapshots=1\)/);
    const startedMs = Date.now();
    await waitFor(slow.closed, 'the incomplete snapshot dropped');
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(150);
    expect(a.got).toEqual([]);
  });

  it('refuses to start on a peer address that is taken, saying so', async () => {
    const a = await node(1);
    await expect(TcpTransport.start({ id: 2, listenAddr: `127.0.0.1:${a.t.port}` })).rejects.toThrow(`peer address 127.0.0.1:${a.t.port} is already in use by another process (EADDRINUSE)`);
  });

  it('carries a batch larger than one socket read (many entries) intact', async () => {
    const a = await node(1);
    const b = await node(2);
    a.t.addPeer(2, `127.0.0.1:${b.t.port}`);
    const entries = Array.from({ length: 200 }, (_, i) => ({ term: 1, index: i + 1, type: 0, data: new Uint8Array(2000).fill(i % 256) }));
    a.t.send([emptyMessage({ type: MessageType.App, from: 1, to: 2, term: 1, entries })]);
    await waitFor(() => b.got.length === 1, 'delivery');
    expect(b.got[0]!.entries.map((e) => e.index)).toEqual(entries.map((e) => e.index));
    expect(b.got[0]!.entries.every((e, i) => e.data.length === 2000 && e.data[1999] === i % 256)).toBe(true);
  });
});
