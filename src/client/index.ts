// Public entry point of the raftkv TypeScript SDK.
export {
  KvClient,
  KvClientError,
  StatusCode,
  Consistency,
  CompareResult,
  CompareTarget,
  PartitionDirection,
  prefixEnd,
  text,
  toBytes,
  writeDefinitelyNotApplied,
  type AddOptions,
  type AddResult,
  type Bytes,
  type CasResult,
  type CompactResult,
  type CallOptions,
  type CompareOpName,
  type CompareSpec,
  type CompareTargetName,
  type ConsistencyName,
  type DeleteOptions,
  type DeleteResult,
  type EndpointStatus,
  type FaultConfig,
  type GetResult,
  type KeyValue,
  type KvClientOptions,
  type LeaderHint,
  type Member,
  type MemberAddResult,
  type PutOptions,
  type PutResult,
  type RangeResult,
  type RangeSpec,
  type ReadCallOptions,
  type ReadHeader,
  type StatusResult,
  type TxnOpResult,
  type TxnOpSpec,
  type TxnResult,
  type TxnSpec,
  type WriteOptions,
  type IdempotencyKey,
} from './kv-client.js';
export { Session, encodeSessionToken, decodeSessionToken } from './session.js';
export { Transaction, runTransaction, type TransactionOptions } from './transaction.js';
export { LeaseClient, LeaseKeepAlive, type KeepAliveOptions, type LeaseGrantOptions, type LeaseTtlResult } from './lease.js';
export { type LockHandle, type LockOptions } from './lock.js';
export { Election, type CampaignOptions, type ElectionLeader, type ObserveOptions } from './election.js';
export { type FenceSpec } from './kv-client.js';
export { MAX_LEASE_TTL_SECONDS } from './proto.js';
export { watchChanges, type WatchBatch, type WatchEvent, type WatchOptions } from './watch.js';
