// Typed failures the node returns to clients, each mapped to one gRPC status. A leader hint
// travels in trailing metadata so the SDK can follow it.

import * as grpc from '@grpc/grpc-js';
import type { NodeId } from '../raft/index.js';

import { LEADER_ADDR_METADATA_KEY, LEADER_ID_METADATA_KEY, NOT_APPLIED_METADATA_KEY } from '../wire/kv-proto.js';

export { LEADER_ADDR_METADATA_KEY, LEADER_ID_METADATA_KEY, NOT_APPLIED_METADATA_KEY };

export class KvError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
    readonly leader?: { id: NodeId; clientAddr: string },
    readonly notApplied = false,
    /** Extra trailing metadata (e.g. a counter's current value). */
    readonly extra?: Record<string, string>,
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
    if (this.notApplied) metadata.set(NOT_APPLIED_METADATA_KEY, '1');
    for (const [k, v] of Object.entries(this.extra ?? {})) metadata.set(k, v);
    return { code: this.code, details: this.message, metadata };
  }
}

export const invalidArgument = (msg: string): KvError => new KvError(grpc.status.INVALID_ARGUMENT, msg);
export const resourceExhausted = (msg: string, notApplied = false): KvError => new KvError(grpc.status.RESOURCE_EXHAUSTED, msg, undefined, notApplied);
export const failedPrecondition = (msg: string): KvError => new KvError(grpc.status.FAILED_PRECONDITION, msg);
export const notFound = (msg: string): KvError => new KvError(grpc.status.NOT_FOUND, msg);
export const deadlineExceeded = (msg: string): KvError => new KvError(grpc.status.DEADLINE_EXCEEDED, msg);
export const unavailable = (msg: string, leader?: { id: NodeId; clientAddr: string }): KvError =>
  new KvError(grpc.status.UNAVAILABLE, msg, leader);
/** UNAVAILABLE for a write the server guarantees it did not (and will not) apply. */
export const unavailableNotApplied = (msg: string, leader?: { id: NodeId; clientAddr: string }): KvError =>
  new KvError(grpc.status.UNAVAILABLE, msg, leader, true);
