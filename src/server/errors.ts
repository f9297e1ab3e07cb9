// Typed failures the node returns to clients, each mapped to one gRPC status. A leader hint
// travels in trailing metadata so the SDK can follow it.

import * as grpc from '@grpc/grpc-js';
import type { NodeId } from '../raft/index.js';

export const LEADER_ID_METADATA_KEY = 'x-raftkv-leader-id';
export const LEADER_ADDR_METADATA_KEY = 'x-raftkv-leader-addr';

export class KvError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
    readonly leader?: { id: NodeId; clientAddr: string },
  ) {
    super(message);
    this.name = 'KvError';
  }

  toServiceError(): Partial<grpc.ServiceError> {
    const metadata = new grpc.Metadata();
    if (this.leader) {
      metadata.set(LEADER_ID_METADATA_KEY, String(this.leader.id));
      metadata.set(LEADER_ADDR_METADATA_KEY, this.leader.clientAddr);
    }
    return { code: this.code, details: this.message, metadata };
  }
}

export const invalidArgument = (msg: string): KvError => new KvError(grpc.status.INVALID_ARGUMENT, msg);
export const resourceExhausted = (msg: string): KvError => new KvError(grpc.status.RESOURCE_EXHAUSTED, msg);
export const failedPrecondition = (msg: string): KvError => new KvError(grpc.status.FAILED_PRECONDITION, msg);
export const notFound = (msg: string): KvError => new KvError(grpc.status.NOT_FOUND, msg);
export const deadlineExceeded = (msg: string): KvError => new KvError(grpc.status.DEADLINE_EXCEEDED, msg);
export const unavailable = (msg: string, leader?: { id: NodeId; clientAddr: string }): KvError =>
  new KvError(grpc.status.UNAVAILABLE, msg, leader);
