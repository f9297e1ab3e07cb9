// When a peer connection breaks, the next attempt waits: initialMs, doubling up to maxMs, and
// back to initialMs once the owner says the peer is back (reset).

export class ReconnectBackoff {
  private delayMs: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
  ) {
    this.delayMs = initialMs;
  }

  /** True while an attempt is scheduled (the owner must not reconnect before it). */
  get waiting(): boolean {
    return this.timer !== undefined;
  }

  /** Runs `attempt` after the current delay (once, if already scheduled) and doubles the delay. */
  schedule(attempt: () => void): void {
    if (this.timer) return;
    const delayMs = this.delayMs;
    this.delayMs = Math.min(this.delayMs * 2, this.maxMs);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      attempt();
    }, delayMs);
  }

  reset(): void {
    this.delayMs = this.initialMs;
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
