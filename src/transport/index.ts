export { DEFAULT_MAX_QUEUED_MESSAGES, type Transport, type MessageHandler, type UnreachableHandler, type SnapshotStatusHandler } from './transport.js';
export { GrpcTransport, type GrpcTransportOptions } from './grpc-transport.js';
export { TcpTransport, type TcpTransportOptions } from './tcp-transport.js';
export { MemoryNetwork, MemoryTransport } from './memory-transport.js';
export { FaultyTransport, NO_FAULTS, MAX_FAULT_DELAY_MS, InvalidFaultConfigError, type FaultConfig, type PartitionDirection } from './faulty-transport.js';
export {
  encodeBatch,
  decodeBatch,
  encodeMessage,
  decodeMessage,
  encodeMemberContext,
  decodeMemberContext,
  CodecError,
  type MessageBatch,
  type MemberContext,
} from './codec.js';
