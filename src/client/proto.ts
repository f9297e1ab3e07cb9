// The SDK's view of the wire contract: re-exported from src/wire (shared with the server).
export * from '../wire/kv-proto.js';
