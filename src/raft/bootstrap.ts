// The initial state of a brand-new cluster, as etcd-io/raft bootstraps it: the founding
// members are written into the log as committed ConfChange entries at term 1. A node that
// joins later and replays the log from index 1 then learns the full membership, instead of
// seeing only the changes made after bootstrap (which would make it believe it is alone).

import { assert } from './assert.js';
import { encodeConfChange } from './conf-change-codec.js';
import { ConfChangeType, EntryType, type ConfState, type Entry, type HardState, type NodeId } from './types.js';

export interface BootstrapState {
  entries: Entry[];
  hardState: HardState;
  confState: ConfState;
}

/** Every founding member must bootstrap with the same peer list (and contexts), in any order. */
export function bootstrapState(peers: Array<{ id: NodeId; context?: Uint8Array }>): BootstrapState {
  assert(peers.length > 0, 'bootstrap needs at least one peer');
  const sorted = [...peers].sort((a, b) => a.id - b.id);
  const entries: Entry[] = sorted.map((p, i) => ({
    term: 1,
    index: i + 1,
    type: EntryType.ConfChange,
    data: encodeConfChange({ type: ConfChangeType.AddNode, nodeId: p.id, context: p.context ?? new Uint8Array(0) }),
  }));
  return {
    entries,
    hardState: { term: 1, vote: 0, commit: entries.length },
    confState: { voters: sorted.map((p) => p.id), learners: [] },
  };
}
