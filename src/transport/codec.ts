// Wire codec for the peer protocol (proto/raft/v1/raft.proto). The core's Message already
// has the proto's field names, so encoding passes it straight to protobufjs; decoding copies
// into plain objects, because protobufjs instances keep defaults on their prototype and
// would lose them in an object spread inside the core.

import type * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { EMPTY_BYTES, type ConfState, type Entry, type Message, type Snapshot } from '../raft/index.js';
import { asBuffer } from '../wire/grpc-service.js';
import { loadProtoRoot } from '../wire/proto-root.js';

export interface MessageBatch {
  from: number;
  messages: Message[];
}

export interface StreamSummary {
  batchesReceived: number;
}

/** One piece of a snapshot transfer; the first carries the SNAP message (data stripped) and totalBytes. */
export interface SnapshotChunk {
  message?: Message;
  totalBytes: number;
  offset: number;
  data: Uint8Array;
}

export interface SnapshotAck {
  accepted: boolean;
  error: string;
}

/** Bytes that do not decode into a valid peer message. */
export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CodecError';
  }
}

interface RaftTypes {
  batch: protobuf.Type;
  summary: protobuf.Type;
  chunk: protobuf.Type;
  ack: protobuf.Type;
  message: protobuf.Type;
  memberContext: protobuf.Type;
}

let types: RaftTypes | undefined;

function raftTypes(): RaftTypes {
  if (types) return types;
  const root = loadProtoRoot(['raft/v1/raft.proto']);
  const t = (n: string): protobuf.Type => root.lookupType(`raftkv.raft.v1.${n}`);
  types = {
    batch: t('MessageBatch'),
    summary: t('StreamSummary'),
    chunk: t('SnapshotChunk'),
    ack: t('SnapshotAck'),
    message: t('Message'),
    memberContext: t('MemberContext'),
  };
  return types;
}

export function encodeBatch(batch: MessageBatch): Uint8Array {
  return raftTypes().batch.encode(batch as unknown as protobuf.Message).finish();
}

export function decodeBatch(bytes: Uint8Array): MessageBatch {
  const raw = decodeOrThrow(raftTypes().batch, bytes) as unknown as { from: number; messages: Message[] };
  const messages = new Array<Message>(raw.messages.length);
  for (let i = 0; i < raw.messages.length; i++) messages[i] = toCoreMessage(raw.messages[i]!);
  return { from: checkId(raw.from), messages };
}

export function encodeMessage(m: Message): Uint8Array {
  return raftTypes().message.encode(m as unknown as protobuf.Message).finish();
}

export function decodeMessage(bytes: Uint8Array): Message {
  return toCoreMessage(decodeOrThrow(raftTypes().message, bytes) as unknown as Message);
}

export function encodeChunk(c: SnapshotChunk): Uint8Array {
  return raftTypes().chunk.encode(c as unknown as protobuf.Message).finish();
}

export function decodeChunk(bytes: Uint8Array): SnapshotChunk {
  const raw = decodeOrThrow(raftTypes().chunk, bytes) as unknown as SnapshotChunk;
  const chunk: SnapshotChunk = { totalBytes: raw.totalBytes, offset: raw.offset, data: raw.data };
  if (raw.message) chunk.message = toCoreMessage(raw.message);
  return chunk;
}

export function encodeAck(a: SnapshotAck): Uint8Array {
  return raftTypes().ack.encode(a as unknown as protobuf.Message).finish();
}

export function decodeAck(bytes: Uint8Array): SnapshotAck {
  const raw = decodeOrThrow(raftTypes().ack, bytes) as unknown as SnapshotAck;
  return { accepted: raw.accepted, error: raw.error };
}

export interface MemberContext {
  peerAddr: string;
  clientAddr: string;
}

/** The bytes a ConfChange carries in `context`: where the member can be reached. */
export function encodeMemberContext(c: MemberContext): Uint8Array {
  return raftTypes().memberContext.encode(c as unknown as protobuf.Message).finish();
}

export function decodeMemberContext(bytes: Uint8Array): MemberContext {
  const raw = decodeOrThrow(raftTypes().memberContext, bytes) as unknown as MemberContext;
  return { peerAddr: raw.peerAddr, clientAddr: raw.clientAddr };
}

function decodeOrThrow(type: protobuf.Type, bytes: Uint8Array): protobuf.Message {
  try {
    return type.decode(bytes);
  } catch (e) {
    throw new CodecError(`malformed ${type.name}: ${(e as Error).message}`);
  }
}

function checkId(n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new CodecError(`integer out of range: ${n}`);
  return n;
}

function toCoreEntry(e: Entry): Entry {
  return { term: checkId(e.term), index: checkId(e.index), type: e.type, data: e.data };
}

function toConfState(cs: ConfState | null | undefined): ConfState {
  if (!cs) return { voters: [], learners: [] };
  return { voters: cs.voters.map(checkId), learners: cs.learners.map(checkId) };
}

function toCoreSnapshot(s: Snapshot): Snapshot {
  const md = s.metadata ?? { index: 0, term: 0, confState: { voters: [], learners: [] } };
  return {
    metadata: { index: checkId(md.index), term: checkId(md.term), confState: toConfState(md.confState) },
    data: s.data ?? EMPTY_BYTES,
  };
}

function toCoreMessage(m: Message): Message {
  const entries = new Array<Entry>(m.entries.length);
  for (let i = 0; i < m.entries.length; i++) entries[i] = toCoreEntry(m.entries[i]!);
  const out: Message = {
    type: m.type,
    from: checkId(m.from),
    to: checkId(m.to),
    term: checkId(m.term),
    logTerm: checkId(m.logTerm),
    index: checkId(m.index),
    entries,
    commit: checkId(m.commit),
    reject: m.reject,
    rejectHint: checkId(m.rejectHint),
    context: m.context,
    sentTick: checkId(m.sentTick),
  };
  if (m.snapshot) out.snapshot = toCoreSnapshot(m.snapshot);
  return out;
}

/** grpc-js definition of raftkv.raft.v1.Raft whose handlers see core types directly. */
export function raftServiceDefinition(): grpc.ServiceDefinition {
  const t = raftTypes();
  const enc = (type: protobuf.Type) => (v: unknown): Buffer => asBuffer(type.encode(v as protobuf.Message).finish());
  const decSummary = (b: Buffer): StreamSummary => {
    const raw = decodeOrThrow(t.summary, b) as unknown as StreamSummary;
    return { batchesReceived: raw.batchesReceived };
  };
  return {
    Stream: {
      path: '/raftkv.raft.v1.Raft/Stream',
      requestStream: true,
      responseStream: false,
      requestSerialize: (v: MessageBatch) => asBuffer(encodeBatch(v)),
      requestDeserialize: (b: Buffer) => decodeBatch(b),
      responseSerialize: enc(t.summary),
      responseDeserialize: decSummary,
      originalName: 'stream',
    },
    SendSnapshot: {
      path: '/raftkv.raft.v1.Raft/SendSnapshot',
      requestStream: true,
      responseStream: false,
      requestSerialize: (v: SnapshotChunk) => asBuffer(encodeChunk(v)),
      requestDeserialize: (b: Buffer) => decodeChunk(b),
      responseSerialize: enc(t.ack),
      responseDeserialize: (b: Buffer) => decodeAck(b),
      originalName: 'sendSnapshot',
    },
  } as grpc.ServiceDefinition;
}
