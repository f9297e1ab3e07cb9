// Partitioning helpers (P-compositionality: a history is linearizable iff each independent
// sub-history is).

import type { LinOp } from '../lin/types.js';

/** One partition per key; ops without a key share one partition. */
export function partitionByKey<I, O>(ops: LinOp<I, O>[]): LinOp<I, O>[][] {
  const groups = new Map<string | undefined, LinOp<I, O>[]>();
  for (const op of ops) {
    let group = groups.get(op.key);
    if (!group) {
      group = [];
      groups.set(op.key, group);
    }
    group.push(op);
  }
  return [...groups.values()];
}

/**
 * Ops that touch several keys (transactions) join those keys: partitions are the connected
 * components of the op/key graph, found with union-find.
 */
export function partitionByKeySets<I, O>(ops: LinOp<I, O>[], keysOf: (op: LinOp<I, O>) => string[]): LinOp<I, O>[][] {
  const parent = new Map<string, string>();
  const find = (k: string): string => {
    let root = k;
    while (parent.get(root)! !== root) root = parent.get(root)!;
    let node = k;
    while (node !== root) {
      const next = parent.get(node)!;
      parent.set(node, root);
      node = next;
    }
    return root;
  };
  const opKeys = ops.map((op) => {
    const keys = keysOf(op);
    for (const k of keys) if (!parent.has(k)) parent.set(k, k);
    for (let i = 1; i < keys.length; i++) parent.set(find(keys[i]!), find(keys[0]!));
    return keys;
  });
  const groups = new Map<string, LinOp<I, O>[]>();
  ops.forEach((op, i) => {
    const keys = opKeys[i]!;
    // An op touching no key cannot interact with others through state; give it its own group.
    const root = keys.length > 0 ? find(keys[0]!) : `\u0000op${i}`;
    let group = groups.get(root);
    if (!group) {
      group = [];
      groups.set(root, group);
    }
    group.push(op);
  });
  return [...groups.values()];
}
