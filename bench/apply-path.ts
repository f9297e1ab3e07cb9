// CPU cost of one node's disk path per replicated put, without the network: what a follower
// does for every entry (persist the log entries in one synced LevelDB batch, then apply them
// through the state machine in one batch). The leader does the same plus the client RPC.
// Single process, so the figures are steadier than the cluster benchmark's; use it to compare
// changes to storage and apply code.
//
//   npm run bench:apply -- [--op put|add] [--entries N] [--batch K] [--keys N] [--value-bytes N] [--idempotency] [--retain-revisions N]
//
// --op add applies bounded counter adds (+1 with a max) instead of puts: the hot-counter path.
//
// Prints entries/s and CPU us per entry (process CPU: main thread plus LevelDB's threads).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { EntryType, type Entry } from '../src/raft/index.js';
import { KvStateMachine } from '../src/state-machine/index.js';
import { LevelRaftStorage, openNodeDb } from '../src/storage/index.js';
import { encodeCommand } from '../src/wire/kv-proto.js';

interface Options {
  op: 'put' | 'add';
  entries: number;
  batch: number;
  keys: number;
  valueBytes: number;
  idempotency: boolean;
  retainRevisions?: number;
}

function parse(): Options {
  const int = (v: string): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`expected a positive integer, got "${v}"`);
    return n;
  };
  const p = new Command('bench:apply')
    .option('--op <op>', 'put | add (counter add +1 with a max bound)', (v: string) => {
      if (v !== 'put' && v !== 'add') throw new Error(`--op is put or add, got "${v}"`);
      return v;
    }, 'put')
    .option('--entries <n>', 'entries to persist and apply', int, 100_000)
    .option('--batch <k>', 'entries per Ready (one log batch + one apply batch)', int, 64)
    .option('--keys <n>', 'distinct keys written at random', int, 10_000)
    .option('--value-bytes <n>', 'value size', int, 256)
    .option('--idempotency', 'every put carries an idempotency key (as the SDK sends)', false)
    .option('--retain-revisions <n>', 'MVCC automatic compaction keeps this many revisions (0 = off; default: the state machine default, 100000)', (v: string) => (v === '0' ? 0 : int(v)))
    .parse();
  return p.opts<Options>();
}

async function main(): Promise<void> {
  const o = parse();
  const dir = mkdtempSync(join(tmpdir(), 'raftkv-apply-bench-'));
  try {
    const db = await openNodeDb(dir);
    const storage = await LevelRaftStorage.open(db);
    const sm = await KvStateMachine.open(db, o.retainRevisions === undefined ? {} : { retainRevisions: o.retainRevisions });
    const value = new Uint8Array(o.valueBytes).fill(0x61);
    let seed = 42;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const enc = new TextEncoder();
    const makeBatch = (first: number, n: number): Entry[] =>
      Array.from({ length: n }, (_, i) => {
        const key = enc.encode(`key-${String(rnd(o.keys)).padStart(6, '0')}`);
        const idempotencyKey = o.idempotency ? { clientId: `client-${(first + i) % 4}`, seq: first + i } : null;
        const cmd = o.op === 'add' ? { counter: { key, delta: 1, max: Number.MAX_SAFE_INTEGER, idempotencyKey } } : { put: { key, value, idempotencyKey } };
        return { index: first + i, term: 1, type: EntryType.Normal, data: encodeCommand(cmd) };
      });
    // Warm up the JIT on a tenth of the run, then measure.
    const warm = Math.max(o.batch, Math.floor(o.entries / 10));
    let index = 1;
    const run = async (n: number): Promise<void> => {
      for (let done = 0; done < n; done += o.batch) {
        const ents = makeBatch(index, Math.min(o.batch, n - done));
        index += ents.length;
        const last = ents[ents.length - 1]!.index;
        await storage.save({ hardState: { term: 1, vote: 1, commit: last }, entries: ents }, [], { sync: true });
        await sm.applyEntries(ents);
      }
    };
    await run(warm);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await run(o.entries);
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const cpuUs = cpu.user + cpu.system;
    console.log(`op ${o.op}, entries ${o.entries}, batch ${o.batch}, keys ${o.keys}, value ${o.valueBytes} B, idempotency ${o.idempotency ? 'yes' : 'no'}, retain ${sm.retainRevisions} revisions`);
    console.log(`entries/s ${Math.round(o.entries / (wallMs / 1000))}   CPU us/entry ${(cpuUs / o.entries).toFixed(1)} (user ${(cpu.user / o.entries).toFixed(1)}, system ${(cpu.system / o.entries).toFixed(1)})   wall us/entry ${((wallMs * 1000) / o.entries).toFixed(1)}`);
    await db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
