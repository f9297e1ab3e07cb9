// TypeScript view of proto/kv/v1 (public API + the replicated Command) over protobufjs
// reflection. Field names are the camelCase protobufjs derives from the .proto. Optional
// message fields may be null/undefined on decode; scalars decode to their proto3 defaults.

import type protobuf from 'protobufjs';
import { loadProtoRoot } from './proto-root.js';
import { serviceDefinition } from './grpc-service.js';
import type * as grpc from '@grpc/grpc-js';

/** Trailing-metadata keys of error responses (part of the wire contract). */
export const LEADER_ID_METADATA_KEY = 'x-raftkv-leader-id';
export const LEADER_ADDR_METADATA_KEY = 'x-raftkv-leader-addr';
/**
 * Set (to "1") on errors where the server guarantees the write was NOT applied and never will
 * be (refused before proposing, or its log slot went to another leader's entry): a client may
 * retry such a write safely. Clients must not infer this from message text.
 */
export const NOT_APPLIED_METADATA_KEY = 'x-raftkv-not-applied';
/** On a Counter refused by a bound (FAILED_PRECONDITION): the counter's current value, decimal. */
export const COUNTER_VALUE_METADATA_KEY = 'x-raftkv-counter-value';
/** On a read below the compacted revision (OUT_OF_RANGE): the compacted revision, decimal. */
export const COMPACT_REVISION_METADATA_KEY = 'x-raftkv-compact-revision';

export enum Consistency {
  Unspecified = 0,
  Linearizable = 1,
  Lease = 2,
  Session = 3,
  Stale = 4,
}

export enum CompareResult {
  Equal = 0,
  Greater = 1,
  Less = 2,
  NotEqual = 3,
}

export enum CompareTarget {
  Value = 0,
  Version = 1,
  CreateRevision = 2,
  ModRevision = 3,
}

export enum PartitionDirection {
  Both = 0,
  Outbound = 1,
  Inbound = 2,
}

export interface ReadOptions {
  consistency?: Consistency;
  minRevision?: number;
  maxStalenessMs?: number;
}

export interface ReadHeader {
  revision: number;
  servedBy: number;
  consistencyUsed: Consistency;
  stalenessMs: number;
  leaderId: number;
  raftTerm: number;
}

export interface WriteHeader {
  revision: number;
}

export interface IdempotencyKey {
  clientId: string;
  seq: number;
}

export interface KeyValue {
  key: Uint8Array;
  value: Uint8Array;
  createRevision: number;
  modRevision: number;
  version: number;
  /** Attached lease (0/absent = none); current reads only. */
  lease?: number;
}

export interface PutRequest {
  key: Uint8Array;
  value: Uint8Array;
  prevKv?: boolean;
  idempotencyKey?: IdempotencyKey | null;
  /** Attach to this lease (0/absent = none; detaches from a previous lease). */
  lease?: number;
  /** Apply only while this fencing token is current. */
  fence?: Fence | null;
}
export interface PutResponse {
  header?: WriteHeader | null;
  prevKv?: KeyValue | null;
}

export interface GetRequest {
  key: Uint8Array;
  read?: ReadOptions | null;
  /** Read at a past revision (0/absent = current). */
  revision?: number;
}
export interface GetResponse {
  header?: ReadHeader | null;
  kv?: KeyValue | null;
}

export interface DeleteRequest {
  key: Uint8Array;
  rangeEnd?: Uint8Array;
  prevKv?: boolean;
  idempotencyKey?: IdempotencyKey | null;
  fence?: Fence | null;
}
export interface DeleteResponse {
  header?: WriteHeader | null;
  deleted: number;
  prevKvs?: KeyValue[];
}

export interface RangeRequest {
  key: Uint8Array;
  rangeEnd?: Uint8Array;
  limit?: number;
  keysOnly?: boolean;
  countOnly?: boolean;
  read?: ReadOptions | null;
  revision?: number;
}
export interface RangeResponse {
  header?: ReadHeader | null;
  kvs: KeyValue[];
  more: boolean;
  count: number;
}

export interface Compare {
  result?: CompareResult;
  target?: CompareTarget;
  key: Uint8Array;
  value?: Uint8Array | null;
  version?: number | null;
  createRevision?: number | null;
  modRevision?: number | null;
}

export interface RequestOp {
  requestRange?: RangeRequest | null;
  requestPut?: PutRequest | null;
  requestDelete?: DeleteRequest | null;
}
export interface ResponseOp {
  responseRange?: RangeResponse | null;
  responsePut?: PutResponse | null;
  responseDelete?: DeleteResponse | null;
}

export interface TxnRequest {
  compare?: Compare[];
  success?: RequestOp[];
  failure?: RequestOp[];
  idempotencyKey?: IdempotencyKey | null;
  fence?: Fence | null;
}
export interface TxnResponse {
  header?: WriteHeader | null;
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface CompactRequest {
  revision: number;
}
export interface CompactResponse {
  header?: WriteHeader | null;
  compactRevision?: number;
}

export interface CounterRequest {
  key: Uint8Array;
  delta: number;
  /** Optional bounds (null/undefined = none). */
  min?: number | null;
  max?: number | null;
  idempotencyKey?: IdempotencyKey | null;
}
export interface CounterResponse {
  header?: WriteHeader | null;
  value: number;
  applied: boolean;
}

/** One replicated state-machine command: exactly one operation is set. */
export interface Command {
  put?: PutRequest | null;
  delete?: DeleteRequest | null;
  txn?: TxnRequest | null;
  compact?: CompactRequest | null;
  counter?: CounterRequest | null;
  leaseGrant?: LeaseGrantRequest | null;
  leaseRevoke?: LeaseRevokeRequest | null;
  leaseExpire?: LeaseExpireCommand | null;
  lockAcquire?: LockAcquireCommand | null;
}

export interface Member {
  id: number;
  peerAddr: string;
  clientAddr: string;
  isLearner: boolean;
}

export interface FaultConfig {
  dropProbability?: number;
  delayMs?: number;
  partitionFrom?: number[];
  partitionDirection?: PartitionDirection;
}

const KV_PROTO_FILES = ['kv/v1/kv.proto', 'kv/v1/command.proto', 'kv/v1/watch.proto'];

let cachedRoot: protobuf.Root | undefined;

/** The reflection root holding raftkv.kv.v1 (loaded once, on first use). */
export function kvRoot(): protobuf.Root {
  cachedRoot ??= loadProtoRoot(KV_PROTO_FILES);
  return cachedRoot;
}

/** Any message type of raftkv.kv.v1 by its short name, e.g. kvType('PutRequest'). */
export function kvType(name: string): protobuf.Type {
  return kvRoot().lookupType(`raftkv.kv.v1.${name}`);
}

let commandType: protobuf.Type | undefined;

export function encodeCommand(cmd: Command): Uint8Array {
  commandType ??= kvType('Command');
  return commandType.encode(cmd as protobuf.Message).finish();
}

export function decodeCommand(data: Uint8Array): Command {
  commandType ??= kvType('Command');
  return commandType.decode(data) as unknown as Command;
}

/** grpc-js service definitions with protobufjs serializers; names: 'KV', 'Cluster', 'Admin'. */
export function kvServiceDefinition(service: 'KV' | 'Cluster' | 'Admin' | 'Watch'): grpc.ServiceDefinition {
  return serviceDefinition(kvRoot(), `raftkv.kv.v1.${service}`);
}

// ---------------------------------------------------------------- leases, locks, elections
// (proto/kv/v1/concurrency.proto)

/** Longest lease TTL a Grant accepts, in seconds (one year); above it: OUT_OF_RANGE. */
export const MAX_LEASE_TTL_SECONDS = 31_536_000;

export interface Fence {
  lock: Uint8Array;
  token: number;
}

export interface LeaseGrantRequest {
  ttl: number;
  id?: number;
}
export interface LeaseGrantResponse {
  header?: WriteHeader | null;
  id: number;
  ttl: number;
}
export interface LeaseRevokeRequest {
  id: number;
}
export interface LeaseRevokeResponse {
  header?: WriteHeader | null;
}
export interface LeaseKeepAliveRequest {
  id: number;
}
export interface LeaseKeepAliveResponse {
  header?: WriteHeader | null;
  id: number;
  ttl: number;
}
export interface LeaseTimeToLiveRequest {
  id: number;
  keys?: boolean;
}
export interface LeaseTimeToLiveResponse {
  header?: WriteHeader | null;
  id: number;
  ttl: number;
  grantedTtl: number;
  keys?: Uint8Array[];
}
export interface LeaseExpireCommand {
  id: number;
}

export interface LockRequest {
  name: Uint8Array;
  lease: number;
}
export interface LockResponse {
  header?: WriteHeader | null;
  key: Uint8Array;
  token: number;
}
export interface UnlockRequest {
  key: Uint8Array;
}
export interface UnlockResponse {
  header?: WriteHeader | null;
}
export interface LockAcquireCommand {
  name: Uint8Array;
  lease: number;
  value?: Uint8Array;
}
export interface LockAcquireResponse {
  header?: WriteHeader | null;
  key: Uint8Array;
  token: number;
  held: boolean;
}

export interface LeaderKey {
  name: Uint8Array;
  key: Uint8Array;
  rev: number;
  lease: number;
}
export interface CampaignRequest {
  name: Uint8Array;
  lease: number;
  value?: Uint8Array;
}
export interface CampaignResponse {
  header?: WriteHeader | null;
  leader?: LeaderKey | null;
}
export interface ProclaimRequest {
  leader?: LeaderKey | null;
  value?: Uint8Array;
}
export interface ProclaimResponse {
  header?: WriteHeader | null;
}
export interface LeaderRequest {
  name: Uint8Array;
}
export interface LeaderResponse {
  header?: ReadHeader | null;
  kv?: KeyValue | null;
}
export interface ResignRequest {
  leader?: LeaderKey | null;
}
export interface ResignResponse {
  header?: WriteHeader | null;
}

/** grpc-js service definitions of concurrency.proto: 'Lease', 'Lock', 'Election'. */
export function concurrencyServiceDefinition(service: 'Lease' | 'Lock' | 'Election'): grpc.ServiceDefinition {
  return serviceDefinition(kvRoot(), `raftkv.kv.v1.${service}`);
}
