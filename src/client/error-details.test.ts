// Error text from grpc-js as the SDK passes it on: the empty "Resolution note: " tail that
// grpc-js appends to connection errors is dropped.

import { describe, expect, it } from 'vitest';
import { KvClient, KvClientError } from './index.js';
import { tidyDetails } from './kv-client.js';

describe('tidyDetails', () => {
  it('drops an empty resolution note and keeps everything else', () => {
    expect(tidyDetails('No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ')).toBe('No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1');
    expect(tidyDetails('No addresses resolved. Resolution note: dns failed')).toBe('No addresses resolved. Resolution note: dns failed');
    expect(tidyDetails('not the leader')).toBe('not the leader');
  });
});

describe('an endpoint that refuses connections', () => {
  it('fails with the refusal, without the empty note', async () => {
    const kv = new KvClient({ endpoints: ['127.0.0.1:1'], defaultTimeoutMs: 1_000 });
    try {
      const err = await kv.status('127.0.0.1:1').then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(KvClientError);
      expect((err as Error).message).toContain('ECONNREFUSED 127.0.0.1:1');
      expect((err as Error).message).not.toContain('Resolution note');
    } finally {
      kv.close();
    }
  });
});
