import { describe, expect, it } from 'vitest';
import { decodeCommand, encodeCommand } from '../wire/kv-proto.js';
import { emptyMessage, MessageType } from '../raft/index.js';
import { CodecError, decodeBatch, decodeMemberContext, decodeMessage, encodeBatch, encodeMemberContext, encodeMessage } from './index.js';

describe('peer codec', () => {
  it('round-trips every Message field, with plain objects and numbers out', () => {
    const m = emptyMessage({
      type: MessageType.Snap, from: 3, to: 2 ** 40, term: 7, logTerm: 6, index: 2 ** 52, commit: 5, reject: true, rejectHint: 4, sentTick: 99,
      context: Uint8Array.of(1), entries: [{ term: 1, index: 2, type: 1, data: Uint8Array.of(9) }],
      snapshot: { metadata: { index: 8, term: 2, confState: { voters: [1, 2], learners: [3] } }, data: Uint8Array.of(4, 5) },
    });
    const out = decodeMessage(encodeMessage(m));
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect({ ...out, context: [...out.context], entries: out.entries.map((e) => ({ ...e, data: [...e.data] })), snapshot: { ...out.snapshot!, data: [...out.snapshot!.data] } }).toEqual({
      ...m, context: [1], entries: [{ term: 1, index: 2, type: 1, data: [9] }], snapshot: { ...m.snapshot!, data: [4, 5] },
    });
    // Defaults survive an object spread (protobufjs keeps them on the prototype otherwise).
    const hb = decodeBatch(encodeBatch({ from: 1, messages: [emptyMessage({ type: MessageType.Heartbeat, from: 1, to: 2 })] }));
    expect({ ...hb.messages[0]! }).toMatchObject({ reject: false, commit: 0, entries: [] });
    expect(hb.messages[0]!.snapshot).toBeUndefined();
  });

  it('rejects garbage with a CodecError', () => {
    expect(() => decodeBatch(Uint8Array.of(0xff, 0xff, 0xff, 0xff))).toThrow(CodecError);
  });

  it('round-trips member context and commands', () => {
    expect(decodeMemberContext(encodeMemberContext({ peerAddr: '127.0.0.1:7101', clientAddr: '127.0.0.1:7001' }))).toEqual({ peerAddr: '127.0.0.1:7101', clientAddr: '127.0.0.1:7001' });
    const cmd = decodeCommand(encodeCommand({ put: { key: Uint8Array.of(1), value: Uint8Array.of(2), idempotencyKey: { clientId: 'c', seq: 5 } } }));
    expect(cmd.put!.idempotencyKey).toMatchObject({ clientId: 'c', seq: 5 });
    expect(cmd.delete).toBeFalsy();
  });
});
