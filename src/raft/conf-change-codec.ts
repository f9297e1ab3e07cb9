// A fixed binary encoding for ConfChange entry payloads, so the core can propose them and
// every host decodes them identically: [version u8][type u8][nodeId f64][context bytes...].

import { assert } from './assert.js';
import { ConfChangeType, type ConfChange } from './types.js';

const CONF_CHANGE_VERSION = 1;
const HEADER_BYTES = 10;

export function encodeConfChange(cc: ConfChange): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + cc.context.length);
  const view = new DataView(out.buffer);
  view.setUint8(0, CONF_CHANGE_VERSION);
  view.setUint8(1, cc.type);
  view.setFloat64(2, cc.nodeId);
  out.set(cc.context, HEADER_BYTES);
  return out;
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  assert(data.length >= HEADER_BYTES, `conf change payload too short: ${data.length} bytes`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  assert(view.getUint8(0) === CONF_CHANGE_VERSION, `unknown conf change version ${view.getUint8(0)}`);
  const type = view.getUint8(1);
  assert(type in ConfChangeType, `unknown conf change type ${type}`);
  const nodeId = view.getFloat64(2);
  assert(Number.isSafeInteger(nodeId) && nodeId > 0, `invalid conf change node id ${nodeId}`);
  return { type: type as ConfChangeType, nodeId, context: data.slice(HEADER_BYTES) };
}
