// Assertions stay on in production (TigerBeetle style): a broken invariant in consensus
// code must stop the node rather than let it serve or persist wrong data.

export class InvariantViolation extends Error {
  constructor(message: string) {
    super(`raft invariant violated: ${message}`);
    this.name = 'InvariantViolation';
  }
}

export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new InvariantViolation(message);
}
