// Wraps any Transport with faults that can be switched at run time (the Admin service's
// SetFaults/ClearFaults): random drops and fixed delay on outbound messages, and a
// partition from a set of peers in either or both directions.

import type { Message, NodeId } from '../raft/index.js';
import type { MessageHandler, SnapshotStatusHandler, Transport, UnreachableHandler } from './transport.js';

export type PartitionDirection = 'both' | 'outbound' | 'inbound';

export interface FaultConfig {
  /** Probability in [0, 1] that an outbound message is dropped. */
  dropProbability: number;
  /** Every outbound message is held this long before it is handed to the inner transport. */
  delayMs: number;
  /** Peers this node is cut off from. */
  partitionFrom: NodeId[];
  partitionDirection: PartitionDirection;
}

export const NO_FAULTS: FaultConfig = Object.freeze({ dropProbability: 0, delayMs: 0, partitionFrom: [], partitionDirection: 'both' as const }) as FaultConfig;

/** A fault setting out of range (e.g. a probability above 1). */
export class InvalidFaultConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidFaultConfigError';
  }
}

/** Upper bound on delayMs: a longer delay is a partition, and timers that long outlive tests. */
export const MAX_FAULT_DELAY_MS = 60_000;

export class FaultyTransport implements Transport {
  private cfg: FaultConfig = NO_FAULTS;
  private partitioned = new Set<NodeId>();
  private handler: MessageHandler = () => {};
  private readonly timers = new Set<NodeJS.Timeout>();

  /** `random` returns a float in [0, 1); inject a seeded one for reproducible runs. */
  constructor(
    private readonly inner: Transport,
    private readonly random: () => number = Math.random,
  ) {
    inner.onMessage((msgs) => this.receive(msgs));
  }

  setFaults(cfg: Partial<FaultConfig>): FaultConfig {
    const next: FaultConfig = { ...NO_FAULTS, ...cfg, partitionFrom: [...(cfg.partitionFrom ?? [])] };
    if (!(next.dropProbability >= 0 && next.dropProbability <= 1)) throw new InvalidFaultConfigError(`dropProbability ${next.dropProbability} is not in [0, 1]`);
    if (!(Number.isFinite(next.delayMs) && next.delayMs >= 0 && next.delayMs <= MAX_FAULT_DELAY_MS)) {
      throw new InvalidFaultConfigError(`delayMs ${next.delayMs} is not in [0, ${MAX_FAULT_DELAY_MS}]`);
    }
    this.cfg = next;
    this.partitioned = new Set(next.partitionFrom);
    return this.faults();
  }

  clearFaults(): FaultConfig {
    return this.setFaults({});
  }

  faults(): FaultConfig {
    return { ...this.cfg, partitionFrom: [...this.cfg.partitionFrom] };
  }

  send(messages: Message[]): void {
    const { dropProbability, delayMs, partitionDirection } = this.cfg;
    const cutOutbound = partitionDirection !== 'inbound';
    const kept = messages.filter((m) => !(cutOutbound && this.partitioned.has(m.to)) && !(dropProbability > 0 && this.random() < dropProbability));
    if (kept.length === 0) return;
    if (delayMs === 0) return this.inner.send(kept);
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.inner.send(kept);
    }, delayMs);
    this.timers.add(t);
  }

  private receive(messages: Message[]): void {
    const cutInbound = this.cfg.partitionDirection !== 'outbound';
    const kept = cutInbound && this.partitioned.size > 0 ? messages.filter((m) => !this.partitioned.has(m.from)) : messages;
    if (kept.length > 0) this.handler(kept);
  }

  onMessage(handler: MessageHandler): void {
    this.handler = handler;
  }
  onUnreachable(handler: UnreachableHandler): void {
    this.inner.onUnreachable(handler);
  }
  onSnapshotStatus(handler: SnapshotStatusHandler): void {
    this.inner.onSnapshotStatus(handler);
  }
  addPeer(id: NodeId, addr: string): void {
    this.inner.addPeer(id, addr);
  }
  removePeer(id: NodeId): void {
    this.inner.removePeer(id);
  }
  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.inner.close();
  }
}
