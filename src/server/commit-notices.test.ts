import { afterEach, describe, expect, it } from 'vitest';
import { MessageType, type Message } from '../raft/index.js';
import { CommitNoticeHold } from './commit-notices.js';

const app = (to: number, commit: number, entries = 0): Message =>
  ({ type: MessageType.App, from: 1, to, term: 2, index: 5, logTerm: 2, commit, entries: Array.from({ length: entries }, (_, i) => ({ index: 6 + i, term: 2, type: 0, data: new Uint8Array(0) })) }) as unknown as Message;
const heartbeat = (to: number): Message => ({ type: MessageType.Heartbeat, from: 1, to, term: 2, commit: 5 }) as unknown as Message;
const isNotice = (m: Message): boolean => m.type === MessageType.App && m.entries.length === 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('CommitNoticeHold', () => {
  let hold: CommitNoticeHold | undefined;
  afterEach(() => hold?.stop());

  it('holds notices, lets other messages through, and sends the held ones after the delay', async () => {
    const sent: Message[][] = [];
    hold = new CommitNoticeHold(5, (m) => sent.push(m), () => true);
    hold.send([app(2, 7), app(3, 7), heartbeat(2)], isNotice);
    expect(sent).toEqual([[heartbeat(2)]]); // a heartbeat does not replace a notice
    await sleep(30);
    expect(sent.length).toBe(2);
    expect(sent[1]!.map((m) => [m.to, m.commit])).toEqual([[2, 7], [3, 7]]);
  });

  it('drops a held notice when an append to the same peer goes out first; a newer notice replaces an older one', async () => {
    const sent: Message[][] = [];
    hold = new CommitNoticeHold(5, (m) => sent.push(m), () => true);
    hold.send([app(2, 7), app(3, 7)], isNotice);
    hold.send([app(2, 8, 1)], isNotice); // carries entries and commit 8: supersedes peer 2's notice
    hold.send([app(3, 8)], isNotice); // a newer notice for peer 3
    await sleep(30);
    expect(hold.superseded).toBe(2);
    expect(sent.flat().map((m) => [m.to, m.commit, m.entries.length])).toEqual([[2, 8, 1], [3, 8, 0]]);
  });

  it('sends nothing held once the node stopped leading, and everything at once with delay 0', async () => {
    const sent: Message[][] = [];
    let leading = true;
    hold = new CommitNoticeHold(5, (m) => sent.push(m), () => leading);
    hold.send([app(2, 7)], isNotice);
    leading = false;
    await sleep(30);
    expect(sent).toEqual([]);
    const direct: Message[][] = [];
    const zero = new CommitNoticeHold(0, (m) => direct.push(m), () => true);
    zero.send([app(2, 7), app(3, 7)], isNotice);
    expect(direct.flat().length).toBe(2);
    zero.stop();
  });
});
