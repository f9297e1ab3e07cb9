// The process-cluster helper moved to the fault-injection library (test/fault/lib/cluster.ts),
// which the integration suite shares.
export { ProcessCluster, type CallError, type ProcNode } from '../fault/lib/cluster.js';
