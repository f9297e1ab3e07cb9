// The parts of etcd's API the benchmarks call, for talking to a real etcd with the same
// client stack as ours: etcd's api/etcdserverpb/rpc.proto, mvccpb/kv.proto and
// server/etcdserver/api/v3lock/v3lockpb/v3lock.proto, with etcd's field numbers (only what the
// benchmarks send or read; unknown fields in responses are skipped by the decoder).

import protobuf from 'protobufjs';
import { useNumbersForLongs } from '../src/wire/proto-root.js';

const ETCD_PROTO = `
syntax = "proto3";
package etcdserverpb;
service KV {
  rpc Range(RangeRequest) returns (RangeResponse);
  rpc Put(PutRequest) returns (PutResponse);
  rpc Txn(TxnRequest) returns (TxnResponse);
}
service Maintenance {
  rpc Status(StatusRequest) returns (StatusResponse);
}
service Lease {
  rpc LeaseGrant(LeaseGrantRequest) returns (LeaseGrantResponse);
  rpc LeaseRevoke(LeaseRevokeRequest) returns (LeaseRevokeResponse);
}
message ResponseHeader { uint64 cluster_id = 1; uint64 member_id = 2; int64 revision = 3; uint64 raft_term = 4; }
message KeyValue { bytes key = 1; int64 create_revision = 2; int64 mod_revision = 3; int64 version = 4; bytes value = 5; int64 lease = 6; }
message RangeRequest { bytes key = 1; bytes range_end = 2; int64 limit = 3; int64 revision = 4; bool serializable = 7; }
message RangeResponse { ResponseHeader header = 1; repeated KeyValue kvs = 2; bool more = 3; int64 count = 4; }
message PutRequest { bytes key = 1; bytes value = 2; int64 lease = 3; bool prev_kv = 4; }
message PutResponse { ResponseHeader header = 1; KeyValue prev_kv = 2; }
message DeleteRangeRequest { bytes key = 1; bytes range_end = 2; bool prev_kv = 3; }
message DeleteRangeResponse { ResponseHeader header = 1; int64 deleted = 2; }
message RequestOp { oneof request { RangeRequest request_range = 1; PutRequest request_put = 2; DeleteRangeRequest request_delete_range = 3; } }
message ResponseOp { oneof response { RangeResponse response_range = 1; PutResponse response_put = 2; DeleteRangeResponse response_delete_range = 3; } }
message Compare {
  enum CompareResult { EQUAL = 0; GREATER = 1; LESS = 2; NOT_EQUAL = 3; }
  enum CompareTarget { VERSION = 0; CREATE = 1; MOD = 2; VALUE = 3; LEASE = 4; }
  CompareResult result = 1;
  CompareTarget target = 2;
  bytes key = 3;
  oneof target_union { int64 version = 4; int64 create_revision = 5; int64 mod_revision = 6; bytes value = 7; int64 lease = 8; }
  bytes range_end = 64;
}
message TxnRequest { repeated Compare compare = 1; repeated RequestOp success = 2; repeated RequestOp failure = 3; }
message TxnResponse { ResponseHeader header = 1; bool succeeded = 2; repeated ResponseOp responses = 3; }
message LeaseGrantRequest { int64 TTL = 1; int64 ID = 2; }
message LeaseGrantResponse { ResponseHeader header = 1; int64 ID = 2; int64 TTL = 3; string error = 4; }
message LeaseRevokeRequest { int64 ID = 1; }
message LeaseRevokeResponse { ResponseHeader header = 1; }
message StatusRequest {}
message StatusResponse { ResponseHeader header = 1; string version = 2; int64 db_size = 3; uint64 leader = 4; uint64 raft_index = 5; uint64 raft_term = 6; }
`;

const V3LOCK_PROTO = `
syntax = "proto3";
package v3lockpb;
service Lock {
  rpc Lock(LockRequest) returns (LockResponse);
  rpc Unlock(UnlockRequest) returns (UnlockResponse);
}
message LockRequest { bytes name = 1; int64 lease = 2; }
message LockResponse { etcdserverpb.ResponseHeader header = 1; bytes key = 2; }
message UnlockRequest { bytes key = 1; }
message UnlockResponse { etcdserverpb.ResponseHeader header = 1; }
`;

let root: protobuf.Root | undefined;

/** Services etcdserverpb.KV, .Maintenance, .Lease and v3lockpb.Lock, resolved (parsed once). */
export function etcdRoot(): protobuf.Root {
  if (root) return root;
  useNumbersForLongs();
  const r = protobuf.parse(ETCD_PROTO, { keepCase: false }).root;
  protobuf.parse(V3LOCK_PROTO, r, { keepCase: false });
  r.resolveAll();
  root = r;
  return r;
}
