// Holds back a leader's commit notices for a moment. When the commit index advances, the core
// sends every up-to-date follower an append with no entries whose only news is the new commit
// index (as etcd-io/raft does). Under load the next append carries the same news anyway; at
// low load each notice costs every follower a message, a Ready, an apply batch and an answer,
// which on a small machine competes with the next request. So a notice waits up to
// `commitNoticeDelayMs`; the next append to that follower supersedes it (it carries a commit
// index at least as new and covers at least as many entries), otherwise it goes out late.
// Raft tolerates delayed and dropped messages, so this trades only follower apply lag
// (bounded by the delay) for less work; 0 sends every notice at once.

import { MessageType, type Message, type NodeId } from '../raft/index.js';

export class CommitNoticeHold {
  private readonly held = new Map<NodeId, Message>();
  private timer: NodeJS.Timeout | undefined;
  /** Notices that a later append made unnecessary (diagnostics, tests). */
  superseded = 0;

  constructor(
    private readonly delayMs: number,
    private readonly sendNow: (messages: Message[]) => void,
    /** Still allowed to send the held notices (false once this node stopped leading). */
    private readonly stillLeading: () => boolean,
  ) {}

  /**
   * Sends `messages`, except the commit notices among them (per `isNotice`), which are held;
   * any append to a peer replaces the notice held for it.
   */
  send(messages: Message[], isNotice: (m: Message) => boolean): void {
    const out: Message[] = [];
    for (const m of messages) {
      if (m.type === MessageType.App && this.held.delete(m.to)) this.superseded++;
      if (this.delayMs > 0 && isNotice(m)) {
        this.held.set(m.to, m);
        continue;
      }
      out.push(m);
    }
    if (out.length > 0) this.sendNow(out);
    if (this.held.size > 0 && !this.timer) this.timer = setTimeout(() => this.flush(), this.delayMs);
  }

  /** Sends every held notice now (if still leading). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.held.size === 0) return;
    const notices = [...this.held.values()];
    this.held.clear();
    if (this.stillLeading()) this.sendNow(notices);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.held.clear();
  }
}
