// kvctl end to end: the real bin shim (`node src/cli/kvctl.mjs`) spawned against a 3-node
// cluster running in this process. Spawns are asynchronous: a synchronous spawn would block
// the event loop that the in-process nodes need to answer.

import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster } from '../client/test-cluster.js';
import { table } from './kvctl.js';

const SPAWN_KILL_MS = 45_000;
const SHIM = fileURLToPath(new URL('./kvctl.mjs', import.meta.url));

let cluster: TestCluster;
let eps: string;
let scratch: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function kvctl(args: string[], opts: { stdin?: string; endpoints?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SHIM, '--endpoints', opts.endpoints ?? eps, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    const t0 = Date.now();
    // A generous bound: on a loaded machine tsx start-up alone can take seconds.
    const timer = setTimeout(() => child.kill('SIGKILL'), SPAWN_KILL_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      const ms = Date.now() - t0;
      if (code === null) stderr += `\n[test] kvctl ${args.join(' ')} killed after ${ms} ms`;
      if (ms > 5_000) console.warn(`[test] slow kvctl ${args.join(' ')}: ${ms} ms (exit ${code})`);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.stdin ?? '');
  });
}

function ok(r: Run): Run {
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr, r.stderr).toBe('');
  return r;
}

beforeAll(async () => {
  cluster = await startTestCluster({ size: 3, tickIntervalMs: 20 });
  await cluster.waitForLeader();
  eps = cluster.endpoints.join(',');
  scratch = await mkdtemp(join(tmpdir(), 'kvctl-test-'));
});

afterAll(async () => {
  await cluster?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('kvctl against a live cluster', { timeout: 180_000 }, () => {
  it('put, get (human and --json), get of a missing key', async () => {
    const put = ok(await kvctl(['put', 'k1', 'hello world']));
    expect(put.stdout).toMatch(/^OK \(revision \d+\)\n$/);
    const [get, getJson, missing, missingJson] = await Promise.all([
      kvctl(['get', 'k1']),
      kvctl(['--json', 'get', 'k1']),
      kvctl(['get', 'nope']),
      kvctl(['get', 'nope', '--json']),
    ]);
    expect(ok(get).stdout).toBe('hello world\n');
    const j = JSON.parse(ok(getJson).stdout) as Record<string, unknown>;
    expect(j).toMatchObject({ key: 'k1', found: true, value: 'hello world', version: 1 });
    expect((j.header as { revision: number }).revision).toBeGreaterThan(0);
    expect(ok(missing).stdout).toBe('');
    expect(JSON.parse(ok(missingJson).stdout)).toMatchObject({ key: 'nope', found: false });
  });

  it('get --consistency lease|session|stale reports the mode used', async () => {
    const put = ok(await kvctl(['--json', 'put', 'mode-k', 'v']));
    const rev = (JSON.parse(put.stdout) as { revision: number }).revision;
    const runs = await Promise.all([
      kvctl(['--json', 'get', 'mode-k', '--consistency', 'lease']),
      kvctl(['--json', 'get', 'mode-k', '--consistency', 'session', '--min-revision', String(rev)]),
      kvctl(['--json', 'get', 'mode-k', '--consistency', 'stale', '--max-staleness-ms', '5000']),
    ]);
    const used = runs.map((r) => (JSON.parse(ok(r).stdout) as { value: string; header: { consistencyUsed: number } }));
    for (const u of used) expect(u.value).toBe('v');
    // LEASE may fall back to LINEARIZABLE (1) if the lease lapsed; SESSION = 3, STALE = 4.
    expect([1, 2]).toContain(used[0]!.header.consistencyUsed);
    expect(used[1]!.header.consistencyUsed).toBe(3);
    expect(used[2]!.header.consistencyUsed).toBe(4);
  });

  it('watch --rev replays history as lines; --count ends it', async () => {
    const first = JSON.parse(ok(await kvctl(['--json', 'put', 'watch/a', '1'])).stdout) as { revision: number };
    ok(await kvctl(['put', 'watch/b', '2']));
    ok(await kvctl(['del', 'watch/a']));
    const r = ok(await kvctl(['watch', 'watch/', '--prefix', '--rev', String(first.revision), '--count', '3']));
    expect(r.stdout.trimEnd().split('\n')).toEqual([
      `PUT watch/a = 1 (revision ${first.revision})`,
      `PUT watch/b = 2 (revision ${first.revision + 1})`,
      `DELETE watch/a (revision ${first.revision + 2})`,
    ]);
  });

  it('put --prev-kv, range --prefix/--limit/--keys-only/--count-only, del --prefix', async () => {
    for (const [k, v] of [['p/a', '1'], ['p/b', '2'], ['p/c', '3'], ['q', '4']]) ok(await kvctl(['put', k!, v!]));
    const prev = JSON.parse(ok(await kvctl(['--json', 'put', 'p/a', '1b', '--prev-kv'])).stdout) as { prevKv: { value: string } };
    expect(prev.prevKv.value).toBe('1');

    const [human, limited, keysOnly, countOnly] = await Promise.all([
      kvctl(['range', 'p/', '--prefix']),
      kvctl(['--json', 'range', 'p/', '--prefix', '--limit', '2']),
      kvctl(['range', 'p/', '--prefix', '--keys-only']),
      kvctl(['range', 'p/', '--prefix', '--count-only']),
    ]);
    const lines = ok(human).stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^KEY\s+VALUE\s+CREATE_REV\s+MOD_REV\s+VERSION$/);
    expect(lines.slice(1, 4).map((l) => l.split(/\s+/).slice(0, 2))).toEqual([
      ['p/a', '1b'],
      ['p/b', '2'],
      ['p/c', '3'],
    ]);
    expect(lines[4]).toMatch(/^\(3 of 3 key\(s\); revision \d+\)$/);
    const lj = JSON.parse(ok(limited).stdout) as { kvs: Array<{ key: string }>; more: boolean; count: number };
    expect(lj.kvs.map((kv) => kv.key)).toEqual(['p/a', 'p/b']);
    expect(lj.more).toBe(true);
    expect(lj.count).toBe(3);
    expect(ok(keysOnly).stdout.trimEnd().split('\n').slice(0, 4)).toEqual(['KEY', 'p/a', 'p/b', 'p/c']);
    expect(ok(countOnly).stdout).toBe('3\n');
    // --range-end \0 (backslash zero) = every key >= KEY.
    const toEnd = JSON.parse(ok(await kvctl(['--json', 'range', 'p/b', '--range-end', '\\0', '--keys-only'])).stdout) as { kvs: Array<{ key: string }> };
    expect(toEnd.kvs.map((kv) => kv.key).filter((k) => k.startsWith('p/') || k === 'q')).toEqual(['p/b', 'p/c', 'q']);

    const del = JSON.parse(ok(await kvctl(['--json', 'del', 'p/', '--prefix', '--prev-kv'])).stdout) as { deleted: number; prevKvs: Array<{ key: string }> };
    expect(del.deleted).toBe(3);
    expect(del.prevKvs.map((kv) => kv.key)).toEqual(['p/a', 'p/b', 'p/c']);
    expect(ok(await kvctl(['del', 'q'])).stdout).toMatch(/^deleted 1 \(revision \d+\)/);
    expect(ok(await kvctl(['range', 'p/', '--prefix', '--count-only'])).stdout).toBe('0\n');
  });

  it('txn from stdin and from --file; both branches', async () => {
    ok(await kvctl(['put', 'acct', '100']));
    const spec = {
      compare: [{ key: 'acct', value: '100' }],
      success: [{ put: { key: 'acct', value: '90', prevKv: true } }, { get: { key: 'acct' } }],
      failure: [{ get: { key: 'acct' } }],
    };
    const first = ok(await kvctl(['txn'], { stdin: JSON.stringify(spec) }));
    expect(first.stdout).toMatch(/^SUCCEEDED \(revision \d+\)\n\[0\] put: revision \d+ \(previous: 100\)\n\[1\] range: 1 key\(s\)\n {4}acct = 90\n$/);
    const file = join(scratch, 'txn.json');
    await writeFile(file, JSON.stringify(spec));
    const second = JSON.parse(ok(await kvctl(['--json', 'txn', '--file', file])).stdout) as { succeeded: boolean; responses: Array<{ type: string; kvs: Array<{ value: string }> }> };
    expect(second.succeeded).toBe(false);
    expect(second.responses[0]!.type).toBe('range');
    expect(second.responses[0]!.kvs[0]!.value).toBe('90');
  });

  it('status: one row per endpoint with exactly one leader; --json', async () => {
    const leaderId = await cluster.waitForLeader();
    const [human, json] = await Promise.all([kvctl(['status']), kvctl(['status', '--json'])]);
    const lines = ok(human).stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ENDPOINT\s+ID\s+ROLE\s+TERM\s+LEADER\s+COMMIT\s+APPLIED\s+REVISION\s+ERROR$/);
    expect(lines).toHaveLength(4);
    expect(lines.slice(1).filter((l) => /\sLEADER\s/.test(l))).toHaveLength(1);
    const rows = JSON.parse(ok(json).stdout) as Array<{ endpoint: string; memberId: number; role: string; leaderId: number; revision: number }>;
    expect(rows.map((r) => r.endpoint)).toEqual(cluster.endpoints);
    expect(rows.map((r) => r.memberId)).toEqual([1, 2, 3]);
    expect(rows.filter((r) => r.role === 'LEADER').map((r) => r.memberId)).toEqual([leaderId]);
    expect(rows.every((r) => r.leaderId === leaderId)).toBe(true);
  });

  it('status with an unreachable endpoint still prints the others (exit 0) and reports the error', async () => {
    const r = await kvctl(['status', '--timeout-ms', '1000'], { endpoints: `${eps},127.0.0.1:1` });
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[4]).toMatch(/^127\.0\.0\.1:1\s+-.*(UNAVAILABLE|DEADLINE_EXCEEDED).*ECONNREFUSED/);
    expect(r.stderr).toMatch(/ECONNREFUSED/);
    const none = await kvctl(['status', '--timeout-ms', '500'], { endpoints: '127.0.0.1:1' });
    expect(none.code).toBe(1);
  });

  it('member list, add-learner, remove; leader transfer', async () => {
    const list = ok(await kvctl(['member', 'list'])).stdout.trimEnd().split('\n');
    expect(list[0]).toMatch(/^ID\s+STATUS\s+PEER_ADDR\s+CLIENT_ADDR$/);
    expect(list.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(['1', '2', '3']);
    expect(list.filter((l) => l.includes('(leader)'))).toHaveLength(1);
    const added = JSON.parse(ok(await kvctl(['--json', 'member', 'add-learner', '7', '127.0.0.1:1', '127.0.0.1:2'])).stdout) as { member: { id: number; isLearner: boolean } };
    expect(added.member).toMatchObject({ id: 7, isLearner: true });
    const listed = JSON.parse(ok(await kvctl(['member', 'list', '--json'])).stdout) as { members: Array<{ id: number }> };
    expect(listed.members.map((m) => m.id).sort()).toEqual([1, 2, 3, 7]);
    expect(ok(await kvctl(['member', 'remove', '7'])).stdout).toMatch(/^removed member 7\n/);

    const leaderId = await cluster.waitForLeader();
    const target = leaderId === 1 ? 2 : 1;
    const t = JSON.parse(ok(await kvctl(['--json', 'leader', 'transfer', String(target)])).stdout) as { leaderId: number };
    expect(t.leaderId).toBe(target);
    expect(await cluster.waitForLeader()).toBe(target);
  });

  it('works with a follower as the only endpoint (follows the leader hint)', async () => {
    const leaderId = await cluster.waitForLeader();
    const follower = cluster.specs.find((s) => s.id !== leaderId)!.clientAddr;
    ok(await kvctl(['put', 'via-follower', 'yes'], { endpoints: follower }));
    expect(ok(await kvctl(['get', 'via-follower'], { endpoints: follower })).stdout).toBe('yes\n');
  });
});

describe('kvctl errors and exit codes', { timeout: 180_000 }, () => {
  it('server errors exit 1 with the status on stderr (JSON with --json)', async () => {
    const [empty, emptyJson, notFound] = await Promise.all([
      kvctl(['put', '', 'v']),
      kvctl(['--json', 'get', '']),
      kvctl(['member', 'promote', '42']),
    ]);
    expect(empty.code).toBe(1);
    expect(empty.stdout).toBe('');
    expect(empty.stderr).toMatch(/^kvctl: INVALID_ARGUMENT: key must not be empty/);
    expect(emptyJson.code).toBe(1);
    expect(JSON.parse(emptyJson.stderr)).toMatchObject({ error: { codeName: 'INVALID_ARGUMENT', code: 3 } });
    expect(notFound.code).toBe(1);
    expect(notFound.stderr).toMatch(/NOT_FOUND: member 42/);
  });

  it('an unreachable cluster exits 1 within the timeout', async () => {
    const t0 = Date.now();
    const r = await kvctl(['--timeout-ms', '400', 'get', 'k'], { endpoints: '127.0.0.1:1' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/UNAVAILABLE/);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('usage errors exit 2', async () => {
    const runs = await Promise.all([
      kvctl(['frobnicate']),
      kvctl(['put', 'only-key']),
      kvctl(['range', 'k', '--limit', 'ten']),
      kvctl(['member']),
      kvctl(['member', 'promote', 'x']),
      kvctl(['get', 'k', '--bogus-flag']),
      kvctl(['get', 'k', '--consistency', 'eventual']),
      kvctl(['get', 'k', '--consistency', 'session', '--min-revision', 'soon']),
      kvctl(['txn'], { stdin: 'not json' }),
      kvctl(['txn'], { stdin: '{"compare":[{"key":"k"}]}' }),
      kvctl(['txn'], { stdin: '{"sucess":[]}' }),
      kvctl(['get', 'k'], { endpoints: 'no-port' }),
      kvctl(['--timeout-ms', '-5', 'get', 'k']),
      kvctl([], { endpoints: eps }),
    ]);
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.length).toBeGreaterThan(0);
    }
  });

  it('--help exits 0', async () => {
    const r = await kvctl(['txn', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/"compare"/);
  });
});

describe('kvctl MVCC and counters', { timeout: 180_000 }, () => {
  it('get --rev, range --rev, compact REV, counter add with bounds and negative deltas', async () => {
    const first = JSON.parse(ok(await kvctl(['--json', 'put', 'mvk', 'one'])).stdout) as { revision: number };
    ok(await kvctl(['put', 'mvk', 'two']));
    expect(ok(await kvctl(['get', 'mvk', '--rev', String(first.revision)])).stdout.trim()).toBe('one');
    expect(ok(await kvctl(['range', 'mvk', '--rev', String(first.revision)])).stdout).toMatch(/mvk\s+one/);
    expect(ok(await kvctl(['compact', String(first.revision + 1)])).stdout).toMatch(/compacted up to revision/);
    const gone = await kvctl(['get', 'mvk', '--rev', String(first.revision)]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/OUT_OF_RANGE/);
    expect(ok(await kvctl(['counter', 'add', 'ctr', '5'])).stdout).toMatch(/^5 /);
    expect(ok(await kvctl(['--json', 'counter', 'add', 'ctr', '-3', '--min', '0'])).stdout).toMatch(/"value":2/);
    const refused = await kvctl(['counter', 'add', 'ctr', '-3', '--min', '0']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/FAILED_PRECONDITION.*current value 2/);
    expect(ok(await kvctl(['get', 'ctr'])).stdout.trim()).toBe('2');
    const bad = await Promise.all([kvctl(['counter', 'add', 'ctr', '1.5']), kvctl(['compact', 'x']), kvctl(['get', 'mvk', '--rev', '-1'])]);
    for (const r of bad) expect(r.code, r.stderr).toBe(2);
  });
});

describe('table', () => {
  it('aligns columns and trims trailing blanks', () => {
    expect(table(['A', 'LONG'], [['xyz', 1], ['', true]])).toBe('A    LONG\nxyz  1\n     true');
  });
});
