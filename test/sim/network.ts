// The simulated network: every message is delivered after a random delay (so messages
// reorder), or dropped, or duplicated, unless a partition blocks its direction.

import type { Message, NodeId } from '../../src/raft/index.js';
import type { Rng } from './rng.js';

export interface NetworkFaults {
  /** Probability that a message is lost. */
  dropProbability: number;
  /** Probability that a message is delivered twice. */
  duplicateProbability: number;
  /** Each delivery is delayed by 1..maxDelayTicks ticks, uniformly. */
  maxDelayTicks: number;
}

interface InFlight {
  deliverAtTick: number;
  /** Tie-breaker so equal-tick deliveries happen in a seeded random order. */
  order: number;
  msg: Message;
}

export class SimNetwork {
  private inFlight: InFlight[] = [];
  /** Blocked directions, as "from>to". */
  private blocked = new Set<string>();
  faults: NetworkFaults;
  messagesSent = 0;

  constructor(
    private readonly rng: Rng,
    faults: NetworkFaults,
  ) {
    this.faults = faults;
  }

  /** Returns false when the message was lost at once (partition or drop). */
  send(m: Message, nowTick: number): boolean {
    this.messagesSent++;
    if (this.isBlocked(m.from, m.to)) return false;
    if (this.rng.chance(this.faults.dropProbability)) return false;
    const copies = this.rng.chance(this.faults.duplicateProbability) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = 1 + this.rng.int(this.faults.maxDelayTicks);
      this.inFlight.push({ deliverAtTick: nowTick + delay, order: this.rng.next(), msg: m });
    }
    return true;
  }

  /** Messages due at or before `nowTick`, in delivery order; blocked ones vanish. */
  takeDue(nowTick: number): Message[] {
    const due: InFlight[] = [];
    const rest: InFlight[] = [];
    for (const f of this.inFlight) (f.deliverAtTick <= nowTick ? due : rest).push(f);
    this.inFlight = rest;
    due.sort((a, b) => a.deliverAtTick - b.deliverAtTick || a.order - b.order);
    return due.filter((f) => !this.isBlocked(f.msg.from, f.msg.to)).map((f) => f.msg);
  }

  isBlocked(from: NodeId, to: NodeId): boolean {
    return this.blocked.size > 0 && this.blocked.has(`${from}>${to}`);
  }

  /** Cuts every link between the two groups in both directions. */
  partition(a: NodeId[], b: NodeId[]): void {
    for (const x of a) {
      for (const y of b) {
        this.blocked.add(`${x}>${y}`);
        this.blocked.add(`${y}>${x}`);
      }
    }
  }

  /** Cuts only from -> to. */
  blockOneWay(from: NodeId, to: NodeId): void {
    this.blocked.add(`${from}>${to}`);
  }

  heal(): void {
    this.blocked.clear();
  }

  get pendingCount(): number {
    return this.inFlight.length;
  }
}
