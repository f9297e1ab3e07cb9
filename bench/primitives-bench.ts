// Primitives benchmark (issue 8, "Figures to report"): raftkv's bounded counters, locks and watch,
// on a 3-node cluster, with etcd (3 members, same machine, same run) as the baseline where it
// has an equivalent.
//
//   npm run bench:primitives
//   npm run bench:primitives -- --only contention --duration 10
//
// 1. contention: K hot counters (16), C workers (64), each decrementing a random counter by 1
//    with a lower bound of 0.
//      raftkv add      client.add(key, -1, { min: 0 }): one Counter RPC, no retries
//      raftkv cas      the same read-modify-write loop as etcd, on our SDK (get + casRevision;
//                      a failed CAS returns the current kv, so a retry needs no second read)
//      etcd cas        Range the key, Txn(compare mod_revision == seen → Put value-1); on
//                      failure Range again and retry
//      etcd cas-fg     the same, but the Txn's failure branch ranges the key, so a retry needs
//                      no second Range (the strongest etcd baseline)
//    Two variants: "high" (counters preloaded to 1e9: never at the bound; successful
//    decrements/s over --duration after --warmup) and "low" (counters start at --low-start:
//    drained to 0, then refusals only; reports the drain rate, refusals/s once empty, and checks
//    that no counter went below 0 and that exactly the initial stock was sold).
// 2. locks: acquire/release pairs/s, C=1 and C=16 on one lock name, C=16 on 16 names.
//      raftkv lock        client.lock(name, { ttlSeconds: 10 }) + release() (SDK default: a
//                         fresh lease + keepalive stream per acquisition, revoked on release)
//      raftkv lock/lease  client.lock(name, { lease }) with one lease per worker + release() (Unlock)
//      etcd lock          LeaseGrant + v3lock Lock + LeaseRevoke (what etcd's lock service needs)
//      etcd lock/lease    v3lock Lock + Unlock with one lease per worker
//    Every pair is checked in-process: no two holders of one name at once; raftkv tokens grow.
//    "raftkv lock" opens one KeepAlive bidi stream per pair and half-closes it on release (a
//    cancel is an HTTP/2 RST_STREAM, and Node's server drops a connection past ~33 resets/s
//    after a burst of 1000); the errors column shows it if that ever regresses.
// 3. watch: one writer (C=16) puts --watch-keys keys under a prefix as fast as it can, W watchers
//    (1 and 8) on the prefix via client.watch. Values carry the send time
//    (performance.timeOrigin + performance.now(), same process, so clocks agree). Lag =
//    receive time - send time of the put (so it includes the put's commit); the lag from the
//    put's ack is shown too (negative when the event arrives before the ack). Watcher i uses
//    node i mod 3, leader first (W=1 watches on the leader). Every watcher must see every key
//    exactly once, in revision order.
//
// Options (defaults in brackets):
//   --only contention,locks,watch [all]   --target raftkv|both [both]
//   --duration S [10] --warmup S [2]      contention "high" and every lock case use these
//   --counters K [16]  -c N [64]          contention
//   --low-start N [200]                   contention "low": initial value of every counter
//   --lock-duration S [6]                 measured seconds per lock case (1 s warmup)
//   --watch-keys N [10000] --watchers W[,W..] [1,8] --writer-c N [16] --value-bytes N [128]
//   --workers-per-channel N [16]          as kv-bench: one SDK client / gRPC channel (own TCP
//                                         connection) per 16 workers
//   --tick-ms N [100]  --out DIR [bench/out]  (node data and logs under DIR/run-primitives/)
//   --impl raftkv-add,raftkv-cas,etcd-cas,etcd-cas-fg [all]   contention: only these
//   --rounds N [1]                        contention: run every impl N times, the order reversed
//                                         in even rounds; tables show medians, ratios each round's
//   --coalesce on|off [on]                raftkv SDK clients coalesce concurrent calls into
//                                         KV.Batch (the SDK default); off = one RPC per call,
//                                         as the etcd loops make
//   --cpu-prof                            kvd nodes under `node --cpu-prof` (DIR/prof/nN/)
//
// Clusters use ports 27001-27003/27101-27103 (raftkv) and 22379../22380.. (etcd), apart from
// kv-bench's, so both can run at once. Every process this script starts is stopped by pid at the
// end, on error and on Ctrl-C. Needs `etcd` (apt-get install -y etcd-server) unless --target raftkv.

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { etcdRoot } from './etcd-proto.js';
import { KvClient, KvClientError, StatusCode, text } from '../src/client/index.js';
import { serviceDefinition } from '../src/wire/grpc-service.js';
import { channelOptions, cpuSeconds, etcdInstalled, prepareRun, etcdSystem, fmt, median, percentile, progress, raftkvSystem, sleep, startEtcd, startRaftkv, stopAll, type System } from './kv-bench.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CALL_TIMEOUT_MS = 10_000;
const LOCK_TIMEOUT_MS = 60_000;
const SECTIONS = ['contention', 'locks', 'watch'] as const;
type Section = (typeof SECTIONS)[number];

// ------------------------------------------------------------------ options

interface Options {
  only: Section[];
  etcd: boolean;
  durationS: number;
  warmupS: number;
  rounds: number;
  counters: number;
  concurrency: number;
  lowStart: number;
  lockDurationS: number;
  watchKeys: number;
  watchers: number[];
  writerC: number;
  valueBytes: number;
  workersPerChannel: number;
  tickMs: number;
  /** Start the kvd nodes under `node --cpu-prof` (profiles under OUT/prof/). */
  cpuProf: boolean;
  /** contention: only these implementations (default all). */
  impls?: CounterImpl[];
  /** raftkv SDK clients coalesce concurrent calls into KV.Batch (KvClientOptions.coalesceCalls). */
  coalesce: boolean;
  out: string;
}

const USAGE = 'usage: npm run bench:primitives -- [--only contention,locks,watch] [--target raftkv|both] [--duration S] [--warmup S] [--rounds N] [--counters K] [-c N] [--low-start N] [--lock-duration S] [--watch-keys N] [--watchers 1,8] [--writer-c N] [--value-bytes N] [--workers-per-channel N] [--tick-ms N] [--impl raftkv-add,raftkv-cas,etcd-cas,etcd-cas-fg] [--coalesce on|off] [--cpu-prof] [--out DIR]';

function parseArgs(argv: string[]): Options {
  const o: Options = { only: [...SECTIONS], etcd: true, durationS: 10, warmupS: 2, rounds: 1, counters: 16, concurrency: 64, lowStart: 200, lockDurationS: 6, watchKeys: 10_000, watchers: [1, 8], writerC: 16, valueBytes: 128, workersPerChannel: 16, tickMs: 100, cpuProf: false, coalesce: true, out: join(ROOT, 'bench/out') };
  const num = (flag: string, v: string | undefined, min = 1): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < min) throw new Error(`${flag} needs an integer >= ${min}, got "${v}"`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const take = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case '--only':
        o.only = take().split(',').map((x) => {
          if (!(SECTIONS as readonly string[]).includes(x)) throw new Error(`--only takes ${SECTIONS.join(', ')}, got "${x}"`);
          return x as Section;
        });
        break;
      case '--target': {
        const t = take();
        if (t !== 'raftkv' && t !== 'both') throw new Error(`--target must be raftkv or both, got "${t}"`);
        o.etcd = t === 'both';
        break;
      }
      case '--duration': o.durationS = num(a, take()); break;
      case '--warmup': o.warmupS = num(a, take(), 0); break;
      case '--rounds': o.rounds = Math.floor(num(a, take())); break;
      case '--counters': o.counters = num(a, take()); break;
      case '-c': case '--concurrency': o.concurrency = num(a, take()); break;
      case '--low-start': o.lowStart = num(a, take()); break;
      case '--lock-duration': o.lockDurationS = num(a, take()); break;
      case '--watch-keys': o.watchKeys = num(a, take()); break;
      case '--watchers': o.watchers = take().split(',').map((x) => num(a, x)); break;
      case '--writer-c': o.writerC = num(a, take()); break;
      case '--value-bytes': o.valueBytes = num(a, take(), 32); break;
      case '--workers-per-channel': o.workersPerChannel = num(a, take()); break;
      case '--tick-ms': o.tickMs = num(a, take()); break;
      case '--cpu-prof': o.cpuProf = true; break;
      case '--impl':
        o.impls = take().split(',').map((x) => {
          const impl = x.replace('-', ' ') as CounterImpl;
          if (!COUNTER_IMPLS.includes(impl)) throw new Error(`--impl takes ${COUNTER_IMPLS.map((i) => i.replace(' ', '-')).join(', ')}, got "${x}"`);
          return impl;
        });
        break;
      case '--coalesce': {
        const v = take();
        if (v !== 'on' && v !== 'off') throw new Error(`--coalesce takes on or off, got "${v}"`);
        o.coalesce = v === 'on';
        break;
      }
      case '--out': o.out = resolve(take()); break;
      case '-h': case '--help': console.log(USAGE); process.exit(0); break;
      default: throw new Error(`unknown option ${a}\n${USAGE}`);
    }
  }
  return o;
}

// ------------------------------------------------------------------ etcd client (API subset: etcd-proto.ts)

interface EtcdKv { key: Uint8Array; value: Uint8Array; modRevision: number; version: number }
type Unary = (req: unknown, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => void;

/** One gRPC channel (own TCP connection) to one etcd member, with the calls this benchmark makes. */
class EtcdChannel {
  private static ctors: { kv: grpc.ServiceClientConstructor; lease: grpc.ServiceClientConstructor; lock: grpc.ServiceClientConstructor } | undefined;
  private readonly kv: grpc.Client;
  private readonly lease: grpc.Client;
  private readonly lock: grpc.Client;

  constructor(addr: string, n: number) {
    if (!EtcdChannel.ctors) {
      const root = etcdRoot();
      EtcdChannel.ctors = {
        kv: grpc.makeGenericClientConstructor(serviceDefinition(root, 'etcdserverpb.KV'), 'KV'),
        lease: grpc.makeGenericClientConstructor(serviceDefinition(root, 'etcdserverpb.Lease'), 'Lease'),
        lock: grpc.makeGenericClientConstructor(serviceDefinition(root, 'v3lockpb.Lock'), 'Lock'),
      };
    }
    // The three services share one connection: grpc-js pools subchannels by address + options.
    const opts = channelOptions(5000 + n);
    this.kv = new EtcdChannel.ctors.kv(addr, grpc.credentials.createInsecure(), opts);
    this.lease = new EtcdChannel.ctors.lease(addr, grpc.credentials.createInsecure(), opts);
    this.lock = new EtcdChannel.ctors.lock(addr, grpc.credentials.createInsecure(), opts);
  }

  private call<T>(c: grpc.Client, method: string, req: unknown, timeoutMs = CALL_TIMEOUT_MS): Promise<T> {
    const f = (c as unknown as Record<string, Unary>)[method]!.bind(c);
    return new Promise<T>((res, rej) => f(req, { deadline: Date.now() + timeoutMs }, (e, r) => (e ? rej(e) : res(r as T))));
  }

  async get(key: Uint8Array): Promise<EtcdKv | undefined> {
    const r = await this.call<{ kvs?: EtcdKv[] }>(this.kv, 'Range', { key });
    return r.kvs?.[0];
  }
  put(key: Uint8Array, value: Uint8Array): Promise<unknown> {
    return this.call(this.kv, 'Put', { key, value });
  }
  /** Put `value` if the key's mod revision is still `modRevision`; with `failureGet`, a failed txn returns the current kv. */
  async casRevision(key: Uint8Array, modRevision: number, value: Uint8Array, failureGet: boolean): Promise<{ succeeded: boolean; current?: EtcdKv }> {
    const r = await this.call<{ succeeded: boolean; responses?: Array<{ responseRange?: { kvs?: EtcdKv[] } }> }>(this.kv, 'Txn', {
      compare: [{ result: 0 /* EQUAL */, target: 2 /* MOD */, key, modRevision }],
      success: [{ requestPut: { key, value } }],
      failure: failureGet ? [{ requestRange: { key } }] : [],
    });
    const current = r.responses?.[0]?.responseRange?.kvs?.[0];
    return current ? { succeeded: r.succeeded, current } : { succeeded: r.succeeded };
  }
  /** Grants a lease with our own small id (etcd's own ids are 63-bit, beyond a JS number). */
  async leaseGrant(id: number, ttl: number): Promise<void> {
    const r = await this.call<{ error?: string }>(this.lease, 'LeaseGrant', { TTL: ttl, ID: id });
    if (r.error) throw new Error(`etcd LeaseGrant: ${r.error}`);
  }
  leaseRevoke(id: number): Promise<unknown> {
    return this.call(this.lease, 'LeaseRevoke', { ID: id });
  }
  async lockAcquire(name: Uint8Array, lease: number): Promise<{ key: Uint8Array; revision: number }> {
    const r = await this.call<{ key: Uint8Array; header?: { revision?: number } }>(this.lock, 'Lock', { name, lease }, LOCK_TIMEOUT_MS);
    return { key: r.key, revision: Number(r.header?.revision ?? 0) };
  }
  unlock(key: Uint8Array): Promise<unknown> {
    return this.call(this.lock, 'Unlock', { key });
  }
  close(): void {
    this.kv.close();
    this.lease.close();
    this.lock.close();
  }
}

// ------------------------------------------------------------------ shared bits

const enc = (s: string): Uint8Array => Buffer.from(s);
const nowEpochMs = (): number => performance.timeOrigin + performance.now();
let etcdLeaseIds = 1_000_000;

interface Cluster {
  raftkv: { endpoints: string[]; leader: string; pids: number[] };
  etcd?: { endpoints: string[]; leader: string; pids: number[] };
}

function serverCpu(pids: number[]): number {
  return pids.reduce((a, p) => a + cpuSeconds(p), 0);
}

function sortedOf(xs: number[]): Float64Array {
  return Float64Array.from(xs).sort();
}

function errText(e: unknown): string {
  if (e instanceof KvClientError) return e.message;
  const se = e as { code?: number; details?: string; message?: string };
  return typeof se.code === 'number' ? `${grpc.status[se.code] ?? se.code}: ${se.details ?? se.message}` : String((e as Error)?.message ?? e);
}

function render(t: string[][], leftCols = 1): string {
  const w = t[0]!.map((_, i) => Math.max(...t.map((r) => (r[i] ?? '').length)));
  return t.map((r) => r.map((x, i) => (i < leftCols ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join('  ')).join('\n');
}

/** Whether the SDK clients of this run coalesce calls (--coalesce). */
let coalesceCalls = true;

/** Clients for `c` workers, one per `perChannel` workers (kv-bench's default: 16 workers per channel). */
function raftkvClients(cl: Cluster, c: number, perChannel: number, extra: Partial<ConstructorParameters<typeof KvClient>[0]> = {}): KvClient[] {
  const eps = [cl.raftkv.leader, ...cl.raftkv.endpoints.filter((e) => e !== cl.raftkv.leader)];
  // Each client its own connection, as each etcd channel has.
  return Array.from(
    { length: Math.ceil(c / perChannel) },
    (_, i) => new KvClient({ endpoints: eps, defaultTimeoutMs: CALL_TIMEOUT_MS, attemptTimeoutMs: CALL_TIMEOUT_MS, coalesceCalls, channelOptions: channelOptions(i) as Record<string, number>, ...extra }),
  );
}

function etcdChannels(cl: Cluster, c: number, perChannel: number): EtcdChannel[] {
  return Array.from({ length: Math.ceil(c / perChannel) }, (_, i) => new EtcdChannel(cl.etcd!.leader, i));
}

// ------------------------------------------------------------------ 1. hot-key contention

const COUNTER_IMPLS = ['raftkv add', 'raftkv cas', 'etcd cas', 'etcd cas-fg'] as const;
type CounterImpl = (typeof COUNTER_IMPLS)[number];

interface ContentionResult {
  variant: 'high' | 'low';
  impl: CounterImpl;
  c: number;
  counters: number;
  /** high: successful decrements/s in the measured window. low: initial stock / drain time. */
  successPerSec: number;
  successes: number;
  /** CAS attempts that lost (a txn whose compare failed); 0 for add. */
  retries: number;
  retriesPerSuccess: number;
  /** Decrements refused by the bound (add: FAILED_PRECONDITION; cas: the read value was 0). */
  refusals: number;
  errors: number;
  firstError?: string;
  p50: number;
  p99: number;
  p999: number;
  /** low: seconds to sell the whole initial stock (NaN if it did not finish). */
  drainS?: number;
  /** low: refusals/s once every counter was at 0. */
  refusalsPerSecEmpty?: number;
  serverCpuUsPerSuccess: number;
  /** Final state check: sum(initial) - successes == sum(final), and no counter below 0. */
  check: string;
  /** 1-based round (--rounds); absent in a median row. */
  round?: number;
}

type DecOutcome = { ok: boolean; retries: number };

/** One decrement-by-1-with-floor-0 per call, for one implementation. */
function decrementer(impl: CounterImpl, client: KvClient | undefined, etcd: EtcdChannel | undefined): (key: string) => Promise<DecOutcome> {
  switch (impl) {
    case 'raftkv add':
      return async (key) => {
        try {
          await client!.add(key, -1, { min: 0 });
          return { ok: true, retries: 0 };
        } catch (e) {
          if (e instanceof KvClientError && e.code === StatusCode.FAILED_PRECONDITION && e.counterValue !== undefined) return { ok: false, retries: 0 };
          throw e;
        }
      };
    case 'raftkv cas':
      return async (key) => {
        let kv = (await client!.get(key)).kv;
        for (let retries = 0; ; retries++) {
          const v = Number(text(kv!.value));
          if (v - 1 < 0) return { ok: false, retries };
          const r = await client!.casRevision(key, kv!.modRevision, String(v - 1));
          if (r.succeeded) return { ok: true, retries };
          kv = r.current;
        }
      };
    case 'etcd cas':
    case 'etcd cas-fg': {
      const fg = impl === 'etcd cas-fg';
      return async (key) => {
        const k = enc(key);
        let kv = await etcd!.get(k);
        for (let retries = 0; ; retries++) {
          const v = Number(Buffer.from(kv!.value).toString());
          if (v - 1 < 0) return { ok: false, retries };
          const r = await etcd!.casRevision(k, kv!.modRevision, enc(String(v - 1)), fg);
          if (r.succeeded) return { ok: true, retries };
          kv = fg ? r.current : await etcd!.get(k);
        }
      };
    }
  }
}

async function runContention(cl: Cluster, o: Options, variant: 'high' | 'low', impl: CounterImpl, runId: string): Promise<ContentionResult> {
  const isEtcd = impl.startsWith('etcd');
  const label = `contention ${variant} ${impl}`;
  // raftkv: maxRetries 0, so the only "retries" anywhere are the CAS loops' own.
  const clients = isEtcd ? [] : raftkvClients(cl, o.concurrency, o.workersPerChannel, { maxRetries: 0 });
  const chans = isEtcd ? etcdChannels(cl, o.concurrency, o.workersPerChannel) : [];
  const nCh = Math.max(clients.length, chans.length);
  const keys = Array.from({ length: o.counters }, (_, i) => `prim/ctr/${runId}/${variant}/${impl.replace(' ', '-')}/${String(i).padStart(2, '0')}`);
  const start = variant === 'high' ? 1_000_000_000 : o.lowStart;
  progress(`  ${label}: loading ${o.counters} counters at ${start}\n`);
  for (const k of keys) {
    if (isEtcd) await chans[0]!.put(enc(k), enc(String(start)));
    else await clients[0]!.put(k, String(start));
  }
  const decs = Array.from({ length: nCh }, (_, i) => decrementer(impl, clients[i], chans[i]));
  const pids = isEtcd ? cl.etcd!.pids : cl.raftkv.pids;

  let phase: 'warmup' | 'measure' | 'empty' | 'done' = variant === 'high' && o.warmupS > 0 ? 'warmup' : 'measure';
  let totalSucc = 0; // every success, warmup included (for the final check)
  let succ = 0, retries = 0, refusals = 0, errors = 0, emptyRefusals = 0;
  let firstError: string | undefined;
  let indeterminate = 0; // errors of the write itself: may or may not have applied
  const lat: number[] = [];
  let win = 0, winRef = 0, winRetry = 0;
  let drainedAt = NaN;
  const stock = start * o.counters;
  let onDrained: () => void = () => undefined;
  const drained = new Promise<void>((r) => (onDrained = r));
  const worker = async (w: number): Promise<void> => {
    const dec = decs[w % nCh]!;
    while (phase !== 'done') {
      const key = keys[Math.floor(Math.random() * keys.length)]!;
      const p = phase;
      const t0 = performance.now();
      try {
        const r = await dec(key);
        const dt = performance.now() - t0;
        if (r.ok) {
          totalSucc++;
          win++;
          if (p === 'measure') {
            succ++;
            lat.push(dt);
          }
          if (variant === 'low' && totalSucc === stock) {
            drainedAt = performance.now();
            onDrained();
          }
        } else {
          winRef++;
          if (p === 'measure') refusals++;
          else if (p === 'empty') emptyRefusals++;
        }
        winRetry += r.retries;
        if (p === 'measure') retries += r.retries;
      } catch (e) {
        errors++;
        indeterminate++;
        firstError ??= errText(e);
        await sleep(10);
      }
    }
  };
  const ticker = setInterval(() => {
    progress(`\r  ${label}: ${phase.padEnd(7)} ${String(win).padStart(6)} decrements/s, ${String(winRetry).padStart(6)} retries/s, ${String(winRef).padStart(6)} refusals/s${errors ? `, ${errors} errors` : ''}   `);
    win = winRef = winRetry = 0;
  }, 1000);
  const workers = Array.from({ length: o.concurrency }, (_, w) => worker(w));
  if (phase === 'warmup') {
    await sleep(o.warmupS * 1000);
    phase = 'measure';
  }
  const t0 = performance.now();
  const srv0 = serverCpu(pids);
  let elapsed: number;
  let srvCpu: number;
  let refusalsPerSecEmpty: number | undefined;
  if (variant === 'high') {
    await sleep(o.durationS * 1000);
    elapsed = (performance.now() - t0) / 1000;
    srvCpu = serverCpu(pids) - srv0;
    phase = 'done';
  } else {
    // Drain (capped at 4 x duration), then 3 s with every counter at 0: refusals only.
    const cap = sleep(o.durationS * 4000).then(() => 'cap' as const);
    const how = await Promise.race([drained.then(() => 'drained' as const), cap]);
    elapsed = ((how === 'drained' ? drainedAt : performance.now()) - t0) / 1000;
    srvCpu = serverCpu(pids) - srv0;
    if (how === 'drained') {
      phase = 'empty';
      const e0 = performance.now();
      await sleep(3000);
      refusalsPerSecEmpty = emptyRefusals / ((performance.now() - e0) / 1000);
    }
    phase = 'done';
  }
  await Promise.all(workers);
  clearInterval(ticker);

  // Final state: every counter >= 0 and the stock sold is exactly what was acknowledged.
  let finalSum = 0;
  let negative = 0;
  for (const k of keys) {
    const v = isEtcd ? Number(Buffer.from((await chans[0]!.get(enc(k)))!.value).toString()) : Number(text((await clients[0]!.get(k)).value!));
    finalSum += v;
    if (v < 0) negative++;
  }
  const expected = stock - totalSucc;
  const sold = stock - finalSum;
  let check: string;
  if (negative > 0) check = `FAIL: ${negative} counters below 0`;
  else if (finalSum === expected) check = 'ok';
  else if (finalSum < expected && sold - totalSucc <= indeterminate) check = `ok (${sold - totalSucc} of ${indeterminate} failed calls applied)`;
  else check = `FAIL: final sum ${finalSum}, expected ${expected}`;
  for (const c of clients) c.close();
  for (const c of chans) c.close();

  const sorted = sortedOf(lat);
  const successPerSec = variant === 'high' ? succ / elapsed : Number.isFinite(drainedAt) ? stock / elapsed : succ / elapsed;
  const r: ContentionResult = {
    variant, impl, c: o.concurrency, counters: o.counters,
    successPerSec, successes: succ, retries, retriesPerSuccess: succ ? retries / succ : NaN, refusals, errors,
    p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), p999: percentile(sorted, 0.999),
    serverCpuUsPerSuccess: (srvCpu * 1e6) / succ,
    check,
  };
  if (variant === 'low') {
    r.drainS = Number.isFinite(drainedAt) ? elapsed : NaN;
    if (refusalsPerSecEmpty !== undefined) r.refusalsPerSecEmpty = refusalsPerSecEmpty;
  }
  if (firstError) r.firstError = firstError;
  progress(`\r  ${label}: ${fmt(r.successPerSec, 0)} decrements/s, ${fmt(r.retriesPerSuccess)} retries/success, p99 ${fmt(r.p99)} ms, check ${check}${errors ? `, ${errors} errors (${firstError})` : ''}              \n`);
  return r;
}

/** One row per (variant, impl): the median of each figure over the rounds; counts summed, checks joined. */
function contentionMedians(rs: ContentionResult[]): ContentionResult[] {
  const groups = new Map<string, ContentionResult[]>();
  for (const r of rs) groups.set(`${r.variant}|${r.impl}`, [...(groups.get(`${r.variant}|${r.impl}`) ?? []), r]);
  return [...groups.values()].map((g) => {
    const m = (f: (r: ContentionResult) => number | undefined): number => median(g.map((r) => f(r) ?? NaN));
    const sum = (f: (r: ContentionResult) => number): number => g.reduce((n, r) => n + f(r), 0);
    const checks = [...new Set(g.map((r) => r.check))];
    return {
      ...g[0]!,
      round: undefined,
      successPerSec: m((r) => r.successPerSec),
      successes: sum((r) => r.successes),
      retries: sum((r) => r.retries),
      retriesPerSuccess: m((r) => r.retriesPerSuccess),
      refusals: sum((r) => r.refusals),
      errors: sum((r) => r.errors),
      p50: m((r) => r.p50),
      p99: m((r) => r.p99),
      p999: m((r) => r.p999),
      drainS: m((r) => r.drainS),
      refusalsPerSecEmpty: m((r) => r.refusalsPerSecEmpty),
      serverCpuUsPerSuccess: m((r) => r.serverCpuUsPerSuccess),
      check: checks.length === 1 ? checks[0]! : checks.join('; '),
    };
  });
}

/** Each round's ratios of raftkv add to the others (measured minutes apart at most). */
function roundRatioTable(rs: ContentionResult[]): string {
  const t = [['variant', 'round', 'add / etcd cas', 'add / etcd cas-fg', 'add / raftkv cas']];
  const rounds = [...new Set(rs.map((r) => r.round).filter((x): x is number => x !== undefined))];
  const ratio = (v: string, round: number | undefined, impl: CounterImpl): number => {
    const add = rs.find((r) => r.variant === v && r.round === round && r.impl === 'raftkv add')?.successPerSec ?? NaN;
    return add / (rs.find((r) => r.variant === v && r.round === round && r.impl === impl)?.successPerSec ?? NaN);
  };
  for (const v of ['high', 'low'] as const) {
    const per = (impl: CounterImpl): number[] => rounds.map((k) => ratio(v, k, impl));
    for (const k of rounds) t.push([v, String(k), `${fmt(ratio(v, k, 'etcd cas'), 1)}x`, `${fmt(ratio(v, k, 'etcd cas-fg'), 1)}x`, `${fmt(ratio(v, k, 'raftkv cas'), 1)}x`]);
    if (rounds.length > 0) t.push([v, 'median', `${fmt(median(per('etcd cas')), 1)}x`, `${fmt(median(per('etcd cas-fg')), 1)}x`, `${fmt(median(per('raftkv cas')), 1)}x`]);
  }
  return `successful decrements/s ratios by round (target: raftkv add >= 5x etcd)\n${render(t)}`;
}

function contentionTables(all: ContentionResult[]): string {
  const byRound = all.some((r) => r.round !== undefined);
  const rs = byRound ? contentionMedians(all) : all;
  const out: string[] = [];
  if (byRound) out.push(`medians of ${new Set(all.map((r) => r.round)).size} rounds`);
  const high = rs.filter((r) => r.variant === 'high');
  if (high.length) {
    const t = [['impl', 'succ dec/s', 'retries/succ', 'p50 ms', 'p99 ms', 'p999 ms', 'refusals', 'errors', 'srv cpu us/dec', 'check']];
    for (const r of high) t.push([r.impl, fmt(r.successPerSec, 0), fmt(r.retriesPerSuccess), fmt(r.p50), fmt(r.p99), fmt(r.p999), String(r.refusals), String(r.errors), fmt(r.serverCpuUsPerSuccess, 0), r.check]);
    out.push(`high: counters preloaded to 1e9 (never at the bound); latency = one successful decrement, retries included\n${render(t)}`);
  }
  const low = rs.filter((r) => r.variant === 'low');
  if (low.length) {
    const t = [['impl', 'drain dec/s', 'drain s', 'retries/succ', 'refusals while draining', 'refusals/s once empty', 'p99 ms', 'errors', 'check']];
    for (const r of low) t.push([r.impl, fmt(r.successPerSec, 0), fmt(r.drainS ?? NaN), fmt(r.retriesPerSuccess), String(r.refusals), fmt(r.refusalsPerSecEmpty ?? NaN, 0), fmt(r.p99), String(r.errors), r.check]);
    out.push(`low: counters start at --low-start; drain rate = initial stock / time to sell it; then 3 s of refusals only\n${render(t)}`);
  }
  const ratios = [['variant', 'raftkv add / etcd cas', 'raftkv add / etcd cas-fg', 'raftkv add / raftkv cas']];
  for (const v of ['high', 'low'] as const) {
    const get = (impl: CounterImpl): number => rs.find((r) => r.variant === v && r.impl === impl)?.successPerSec ?? NaN;
    if (!Number.isFinite(get('raftkv add'))) continue;
    ratios.push([v, `${fmt(get('raftkv add') / get('etcd cas'), 1)}x`, `${fmt(get('raftkv add') / get('etcd cas-fg'), 1)}x`, `${fmt(get('raftkv add') / get('raftkv cas'), 1)}x`]);
  }
  if (ratios.length > 1) out.push(`successful decrements/s ratios (target: raftkv add >= 5x etcd)\n${render(ratios)}`);
  if (byRound) out.push(roundRatioTable(all));
  return out.join('\n\n');
}

// ------------------------------------------------------------------ 2. locks

type LockImpl = 'raftkv lock' | 'raftkv lock/lease' | 'etcd lock' | 'etcd lock/lease';

interface LockResult {
  case: string;
  impl: LockImpl;
  c: number;
  names: number;
  pairsPerSec: number;
  pairs: number;
  acquireP50: number;
  acquireP99: number;
  pairP50: number;
  pairP99: number;
  errors: number;
  firstError?: string;
  /** Times a name was acquired while this process still held it (must be 0). */
  overlaps: number;
  /** raftkv: acquisitions whose token did not grow (must be 0). */
  tokenRegressions: number;
}

async function runLocks(cl: Cluster, o: Options, impl: LockImpl, c: number, names: number, runId: string): Promise<LockResult> {
  const caseName = `C=${c}, ${names === 1 ? '1 name' : `${names} names`}`;
  const label = `locks ${caseName} ${impl}`;
  const isEtcd = impl.startsWith('etcd');
  const shared = impl.endsWith('/lease');
  const clients = isEtcd ? [] : raftkvClients(cl, c, o.workersPerChannel);
  const chans = isEtcd ? etcdChannels(cl, c, o.workersPerChannel) : [];
  const lockNames = Array.from({ length: names }, (_, i) => `prim/lock/${runId}/${impl.replace(/[ /]/g, '-')}/c${c}-n${names}/${i}`);
  // One lease per worker for the /lease variants (60 s TTL, longer than the case; revoked after).
  const workerLeases: number[] = [];
  if (shared) {
    for (let w = 0; w < c; w++) {
      if (isEtcd) {
        const id = etcdLeaseIds++;
        await chans[w % chans.length]!.leaseGrant(id, 60);
        workerLeases.push(id);
      } else workerLeases.push((await clients[w % clients.length]!.lease.grant(60)).id);
    }
  }
  const held = new Map<string, boolean>();
  const lastToken = new Map<string, number>();
  let overlaps = 0, tokenRegressions = 0, errors = 0;
  let firstError: string | undefined;
  let measuring = false, done = false;
  let pairs = 0, win = 0;
  const acq: number[] = [];
  const pair: number[] = [];
  const worker = async (w: number): Promise<void> => {
    const name = lockNames[w % names]!;
    while (!done) {
      const t0 = performance.now();
      try {
        let release: () => Promise<unknown>;
        if (isEtcd) {
          const ch = chans[w % chans.length]!;
          const lease = shared ? workerLeases[w]! : etcdLeaseIds++;
          if (!shared) await ch.leaseGrant(lease, 10);
          const got = await ch.lockAcquire(enc(name), lease);
          release = shared ? () => ch.unlock(got.key) : () => ch.leaseRevoke(lease);
        } else {
          const kv = clients[w % clients.length]!;
          const lk = await kv.lock(name, shared ? { lease: workerLeases[w]!, timeoutMs: LOCK_TIMEOUT_MS } : { ttlSeconds: 10, timeoutMs: LOCK_TIMEOUT_MS });
          if (lk.token <= (lastToken.get(name) ?? 0)) tokenRegressions++;
          lastToken.set(name, lk.token);
          release = () => lk.release();
        }
        const t1 = performance.now();
        if (held.get(name)) overlaps++;
        held.set(name, true);
        // (the critical section is empty)
        held.set(name, false); // before release: the next holder may be told before our call returns
        await release();
        const t2 = performance.now();
        win++;
        if (measuring && !done) {
          pairs++;
          acq.push(t1 - t0);
          pair.push(t2 - t0);
        }
      } catch (e) {
        errors++;
        firstError ??= errText(e);
        await sleep(10);
      }
    }
  };
  const ticker = setInterval(() => {
    progress(`\r  ${label}: ${measuring ? 'measuring' : 'warmup   '} ${String(win).padStart(6)} pairs/s${errors ? `, ${errors} errors` : ''}   `);
    win = 0;
  }, 1000);
  const workers = Array.from({ length: c }, (_, w) => worker(w));
  await sleep(1000);
  measuring = true;
  const t0 = performance.now();
  await sleep(o.lockDurationS * 1000);
  done = true;
  const elapsed = (performance.now() - t0) / 1000;
  await Promise.all(workers);
  clearInterval(ticker);
  for (const [w, id] of workerLeases.entries()) {
    if (isEtcd) await chans[w % chans.length]!.leaseRevoke(id).catch(() => undefined);
    else await clients[w % clients.length]!.lease.revoke(id).catch(() => undefined);
  }
  for (const x of clients) x.close();
  for (const x of chans) x.close();
  const sa = sortedOf(acq), sp = sortedOf(pair);
  const r: LockResult = {
    case: caseName, impl, c, names, pairsPerSec: pairs / elapsed, pairs,
    acquireP50: percentile(sa, 0.5), acquireP99: percentile(sa, 0.99), pairP50: percentile(sp, 0.5), pairP99: percentile(sp, 0.99),
    errors, overlaps, tokenRegressions,
  };
  if (firstError) r.firstError = firstError;
  progress(`\r  ${label}: ${fmt(r.pairsPerSec, 0)} pairs/s, acquire p99 ${fmt(r.acquireP99)} ms${overlaps || tokenRegressions ? `, ${overlaps} OVERLAPS, ${tokenRegressions} TOKEN REGRESSIONS` : ''}${errors ? `, ${errors} errors (${firstError})` : ''}              \n`);
  return r;
}

function lockTable(rs: LockResult[]): string {
  const t = [['case', 'impl', 'pairs/s', 'acquire p50 ms', 'acquire p99 ms', 'pair p50 ms', 'pair p99 ms', 'errors', 'overlaps', 'token regress']];
  for (const r of rs) t.push([r.case, r.impl, fmt(r.pairsPerSec, 0), fmt(r.acquireP50), fmt(r.acquireP99), fmt(r.pairP50), fmt(r.pairP99), String(r.errors), String(r.overlaps), isEtcdImpl(r.impl) ? '-' : String(r.tokenRegressions)]);
  return `acquire = from the call to holding the lock (queueing included); pair = acquire + release\n${render(t, 2)}`;
}

const isEtcdImpl = (s: string): boolean => s.startsWith('etcd');

// ------------------------------------------------------------------ 3. watch

interface WatchResult {
  watchers: number;
  keys: number;
  writerC: number;
  writerPutsPerSec: number;
  writerErrors: number;
  /** Events/s per watcher: events received / (last receive - first send). */
  eventsPerSecMin: number;
  eventsPerSecMean: number;
  /** Lag = receive - send time of the put (ms), over every event of every watcher. */
  lagP50: number;
  lagP99: number;
  lagP999: number;
  lagMax: number;
  /** Lag from the put's ack (negative: the event came first). */
  ackLagP50: number;
  ackLagP99: number;
  eventsBeforeAck: number;
  /** Lag p99 per role of the node serving the watch. */
  leaderLagP99: number;
  followerLagP99: number;
  servedBy: Record<string, number>;
  /** Every watcher saw every key exactly once in revision order. */
  check: string;
  putP99: number;
}

async function runWatch(cl: Cluster, o: Options, w: number, runId: string): Promise<WatchResult> {
  const label = `watch W=${w}`;
  const n = o.watchKeys;
  const prefix = `prim/watch/${runId}/W${w}/`;
  const eps = [cl.raftkv.leader, ...cl.raftkv.endpoints.filter((e) => e !== cl.raftkv.leader)];
  const writer = raftkvClients(cl, o.writerC, o.writerC)[0]!;
  const startRevision = (await writer.status()).revision + 1;
  const abort = new AbortController();
  const sendTs = new Float64Array(n);
  const ackTs = new Float64Array(n).fill(NaN);
  const recv = Array.from({ length: w }, () => new Float64Array(n).fill(NaN));
  const sendFromValue = Array.from({ length: w }, () => new Float64Array(n).fill(NaN));
  const got = new Array<number>(w).fill(0);
  const problems: string[] = [];
  const servedBy = new Array<number>(w).fill(0);
  const watcherClients: KvClient[] = [];
  const readies: Array<Promise<void>> = [];
  const finished: Array<Promise<void>> = [];
  let win = 0;
  for (let i = 0; i < w; i++) {
    // Watcher i on node i mod 3 (the SDK watches on its first endpoint), the leader first.
    const rot = [...eps.slice(i % eps.length), ...eps.slice(0, i % eps.length)];
    const kv = new KvClient({ endpoints: rot, defaultTimeoutMs: CALL_TIMEOUT_MS });
    watcherClients.push(kv);
    let ready!: () => void;
    readies.push(new Promise<void>((r) => (ready = r)));
    finished.push((async () => {
      let lastRev = 0;
      try {
        for await (const b of kv.watch(prefix, { prefix: true, startRevision, progressNotifyMs: 100, signal: abort.signal })) {
          const t = nowEpochMs();
          ready();
          servedBy[i] = b.servedBy;
          for (const e of b.events) {
            const k = text(e.kv.key);
            const seq = Number(k.slice(prefix.length));
            if (e.revision <= lastRev) problems.push(`watcher ${i}: revision ${e.revision} after ${lastRev}`);
            lastRev = e.revision;
            if (!Number.isInteger(seq) || seq < 0 || seq >= n) { problems.push(`watcher ${i}: unexpected key ${k}`); continue; }
            if (!Number.isNaN(recv[i]![seq]!)) problems.push(`watcher ${i}: key ${seq} twice`);
            recv[i]![seq] = t;
            sendFromValue[i]![seq] = Number(text(e.kv.value).split(' ', 1)[0]);
            got[i]!++;
            win++;
          }
          if (got[i] === n) break;
        }
      } catch (e) {
        if (!abort.signal.aborted) problems.push(`watcher ${i}: ${errText(e)}`);
      }
      ready();
    })());
  }
  // Start writing once every watch stream is open (its first progress notice came), so the lag
  // does not include stream setup; go anyway after 5 s.
  await Promise.race([Promise.all(readies), sleep(5000)]);
  progress(`  ${label}: ${w} watcher(s) on ${w === 1 ? 'the leader' : 'leader + followers'}, writing ${n} keys with C=${o.writerC}\n`);
  const ticker = setInterval(() => {
    progress(`\r  ${label}: ${String(writtenCount).padStart(7)} of ${n} written, ${String(Math.round(win / w)).padStart(6)} events/s per watcher   `);
    win = 0;
  }, 1000);
  let next = 0, writtenCount = 0, writerErrors = 0;
  let firstError: string | undefined;
  const pad = ' '.repeat(o.valueBytes);
  const putLat: number[] = [];
  const writeWorker = async (): Promise<void> => {
    while (next < n) {
      const seq = next++;
      const t = nowEpochMs();
      sendTs[seq] = t;
      const value = `${t.toFixed(3)} ${pad}`.slice(0, o.valueBytes);
      try {
        await writer.put(`${prefix}${String(seq).padStart(8, '0')}`, value);
        ackTs[seq] = nowEpochMs();
        putLat.push(ackTs[seq]! - t);
        writtenCount++;
      } catch (e) {
        writerErrors++;
        firstError ??= errText(e);
      }
    }
  };
  const tw0 = nowEpochMs();
  await Promise.all(Array.from({ length: o.writerC }, () => writeWorker()));
  const tw1 = nowEpochMs();
  // Wait for every watcher to see every written key (at most 30 s).
  const deadline = Date.now() + 30_000;
  while (got.some((g) => g < writtenCount) && Date.now() < deadline && problems.length === 0) await sleep(50);
  abort.abort();
  await Promise.race([Promise.all(finished), sleep(2000)]);
  clearInterval(ticker);
  for (const c of watcherClients) c.close();
  writer.close();

  const lags: number[] = [];
  const ackLags: number[] = [];
  const leaderLags: number[] = [];
  const followerLags: number[] = [];
  const rates: number[] = [];
  let beforeAck = 0;
  let leaderId = 0;
  const probe = new KvClient({ endpoints: [cl.raftkv.leader] });
  try {
    leaderId = (await probe.status(cl.raftkv.leader)).memberId;
  } catch { /* only for the per-role split */ }
  probe.close();
  for (let i = 0; i < w; i++) {
    let last = 0;
    for (let s = 0; s < n; s++) {
      const r = recv[i]![s]!;
      if (Number.isNaN(r)) continue;
      last = Math.max(last, r);
      const lag = r - sendFromValue[i]![s]!;
      lags.push(lag);
      (servedBy[i] === leaderId ? leaderLags : followerLags).push(lag);
      if (!Number.isNaN(ackTs[s]!)) {
        const al = r - ackTs[s]!;
        ackLags.push(al);
        if (al < 0) beforeAck++;
      }
    }
    rates.push(got[i]! / ((last - tw0) / 1000));
    if (got[i]! < writtenCount) problems.push(`watcher ${i}: ${got[i]} of ${writtenCount} events`);
  }
  const sl = sortedOf(lags), sa = sortedOf(ackLags), sp = sortedOf(putLat);
  const servedCount: Record<string, number> = {};
  for (const s of servedBy) servedCount[`n${s}${s === leaderId ? ' (leader)' : ''}`] = (servedCount[`n${s}${s === leaderId ? ' (leader)' : ''}`] ?? 0) + 1;
  const r: WatchResult = {
    watchers: w, keys: n, writerC: o.writerC,
    writerPutsPerSec: writtenCount / ((tw1 - tw0) / 1000), writerErrors,
    eventsPerSecMin: Math.min(...rates), eventsPerSecMean: rates.reduce((a, b) => a + b, 0) / rates.length,
    lagP50: percentile(sl, 0.5), lagP99: percentile(sl, 0.99), lagP999: percentile(sl, 0.999), lagMax: sl.length ? sl[sl.length - 1]! : NaN,
    ackLagP50: percentile(sa, 0.5), ackLagP99: percentile(sa, 0.99), eventsBeforeAck: beforeAck,
    leaderLagP99: percentile(sortedOf(leaderLags), 0.99), followerLagP99: percentile(sortedOf(followerLags), 0.99),
    servedBy: servedCount,
    check: problems.length === 0 ? 'ok' : `FAIL: ${problems.slice(0, 3).join('; ')}${problems.length > 3 ? ` (+${problems.length - 3})` : ''}`,
    putP99: percentile(sp, 0.99),
  };
  progress(`\r  ${label}: ${fmt(r.eventsPerSecMean, 0)} events/s per watcher, lag p99 ${fmt(r.lagP99)} ms (writer ${fmt(r.writerPutsPerSec, 0)} puts/s), check ${r.check}${writerErrors ? `, ${writerErrors} put errors (${firstError})` : ''}          \n`);
  return r;
}

function watchTable(rs: WatchResult[]): string {
  const t = [['W', 'keys', 'writer puts/s', 'put p99 ms', 'events/s/watcher (min)', 'lag p50 ms', 'lag p99 ms', 'lag p999 ms', 'lag max ms', 'ack-lag p50/p99 ms', 'before ack', 'p99 leader/follower', 'served by', 'check']];
  for (const r of rs) {
    t.push([String(r.watchers), String(r.keys), fmt(r.writerPutsPerSec, 0), fmt(r.putP99), `${fmt(r.eventsPerSecMean, 0)} (${fmt(r.eventsPerSecMin, 0)})`, fmt(r.lagP50), fmt(r.lagP99), fmt(r.lagP999), fmt(r.lagMax), `${fmt(r.ackLagP50)}/${fmt(r.ackLagP99)}`, `${fmt((100 * r.eventsBeforeAck) / Math.max(1, r.keys * r.watchers), 0)}%`, `${fmt(r.leaderLagP99)}/${fmt(r.followerLagP99)}`, Object.entries(r.servedBy).map(([k, v]) => `${k}:${v}`).join(' '), r.check]);
  }
  return `lag = watcher receive time - put send time (same process clock; includes the put's commit); ack-lag = receive - put ack\n${render(t)}`;
}

// ------------------------------------------------------------------ chart

interface Bar { label: string; value: number; color: string; note?: string }

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}

/** Horizontal bar panels, one under the other, each with its own linear scale. */
function chart(title: string, subtitle: string, panels: Array<{ title: string; unit: string; bars: Bar[] }>): string {
  const width = 900, labelW = 260, barW = 520, rowH = 20, gap = 40;
  let y = 60;
  const out: string[] = [];
  for (const p of panels) {
    if (p.bars.length === 0) continue;
    out.push(`<text x="10" y="${y}" font-weight="bold" font-size="13">${esc(p.title)} (${esc(p.unit)})</text>`);
    y += 10;
    const max = Math.max(...p.bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)), 1e-9);
    for (const b of p.bars) {
      const w = Number.isFinite(b.value) ? (b.value / max) * barW : 0;
      out.push(`<text x="${labelW - 6}" y="${y + 14}" text-anchor="end">${esc(b.label)}</text>`);
      out.push(`<rect x="${labelW}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${b.color}"><title>${esc(`${b.label}: ${fmt(b.value)}`)}</title></rect>`);
      out.push(`<text x="${labelW + w + 4}" y="${y + 14}">${esc(fmt(b.value, b.value >= 100 ? 0 : 1))}${b.note ? ` ${esc(b.note)}` : ''}</text>`);
      y += rowH;
    }
    y += gap;
  }
  return [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" font-family="sans-serif" font-size="11">`, `<rect width="100%" height="100%" fill="white"/>`, `<text x="10" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`, `<text x="10" y="38" fill="#555">${esc(subtitle)}</text>`, ...out, '</svg>'].join('\n');
}

const COLORS: Record<string, string> = { raftkv: '#d62728', etcd: '#1f77b4' };
const colorOf = (impl: string): string => COLORS[impl.split(' ')[0]!] ?? '#555';

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  coalesceCalls = o.coalesce;
  const load0 = loadavg()[0]!;
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const runId = stamp;
  const runDir = prepareRun('primitives-bench', join(o.out, 'run-primitives'));
  const needEtcd = o.etcd && (o.only.includes('contention') || o.only.includes('locks'));
  if (needEtcd && !etcdInstalled()) {
    throw new Error('no `etcd` binary on PATH. Install it with:\n    apt-get update && apt-get install -y etcd-server etcd-client\n  or run with --target raftkv (raftkv only, no comparison)');
  }
  const header = `primitives-bench: ${cpus().length} CPUs, 1-min load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} (1/5/15 min) at start; raftkv 3 nodes${needEtcd ? ' vs etcd 3 members' : ''} on loopback, tick ${o.tickMs} ms`;
  console.log(header);
  progress(`starting clusters (data and logs under ${runDir})\n`);
  const rPids: number[] = [];
  const rEps = startRaftkv({ out: o.out, cpuProf: o.cpuProf, nodeFlags: [], tickMs: o.tickMs }, runDir, rPids, { client: 27001, peer: 27101 });
  const cl: Cluster = { raftkv: { endpoints: rEps, leader: '', pids: rPids } };
  const rSys: System = raftkvSystem(rEps, rPids);
  let eSys: System | undefined;
  if (needEtcd) {
    const ePids: number[] = [];
    const eEps = startEtcd(runDir, ePids, { client: 22379, peer: 22380 });
    cl.etcd = { endpoints: eEps, leader: '', pids: ePids };
    eSys = etcdSystem(eEps, ePids);
  }
  const refreshLeaders = async (): Promise<void> => {
    cl.raftkv.leader = await rSys.leader();
    if (cl.etcd && eSys) cl.etcd.leader = await eSys.leader();
  };
  await refreshLeaders();
  progress(`  raftkv leader ${cl.raftkv.leader}${cl.etcd ? `, etcd leader ${cl.etcd.leader}` : ''}\n`);

  const contention: ContentionResult[] = [];
  const locks: LockResult[] = [];
  const watches: WatchResult[] = [];
  if (o.only.includes('contention')) {
    progress(`contention: ${o.counters} counters, C=${o.concurrency}\n`);
    const impls = COUNTER_IMPLS.filter((i) => (o.impls ?? COUNTER_IMPLS).includes(i) && (needEtcd || !i.startsWith('etcd')));
    for (let round = 1; round <= o.rounds; round++) {
      // Reversed in even rounds so a drift of the machine's speed favours no impl.
      const order = round % 2 === 1 ? impls : [...impls].reverse();
      for (const variant of ['high', 'low'] as const) {
        for (const impl of order) {
          await refreshLeaders();
          if (o.rounds > 1) progress(`  round ${round}/${o.rounds}\n`);
          contention.push({ ...(await runContention(cl, o, variant, impl, `${runId}${o.rounds > 1 ? `-r${round}` : ''}`)), ...(o.rounds > 1 ? { round } : {}) });
        }
      }
    }
  }
  if (o.only.includes('locks')) {
    progress('locks\n');
    const impls: LockImpl[] = ['raftkv lock', 'raftkv lock/lease', ...(needEtcd ? (['etcd lock', 'etcd lock/lease'] as const) : [])];
    for (const [c, names] of [[1, 1], [16, 1], [16, 16]] as const) {
      for (const impl of impls) {
        await refreshLeaders();
        locks.push(await runLocks(cl, o, impl, c, names, runId));
      }
    }
  }
  if (o.only.includes('watch')) {
    progress('watch\n');
    for (const w of o.watchers) {
      await refreshLeaders();
      watches.push(await runWatch(cl, o, w, runId));
    }
  }

  const meta = `${cpus().length} CPUs, 1-min load average ${load0.toFixed(1)} at start and ${loadavg()[0]!.toFixed(1)} at end; raftkv SDK calls ${o.coalesce ? 'coalesced (KV.Batch)' : 'one RPC each (--coalesce off)'}`;
  console.log(`\n${meta}`);
  if (contention.length) console.log(`\n== 1. hot-key contention: ${o.counters} counters, C=${o.concurrency}, decrement by 1 with floor 0 (${o.durationS} s + ${o.warmupS} s warmup; low start ${o.lowStart}/counter)\n${contentionTables(contention)}`);
  if (locks.length) console.log(`\n== 2. lock acquire/release pairs (${o.lockDurationS} s each after 1 s warmup)\n${lockTable(locks)}`);
  if (watches.length) console.log(`\n== 3. watch: ${o.watchKeys} puts by C=${o.writerC}, ${o.valueBytes} B values, W watchers on the prefix\n${watchTable(watches)}`);

  mkdirSync(o.out, { recursive: true });
  const base = join(o.out, `primitives-bench-${stamp}`);
  writeFileSync(`${base}.json`, JSON.stringify({ header, meta, options: o, contention, locks, watch: watches }, null, 2));
  writeFileSync(`${base}.svg`, chart('raftkv primitives (3 nodes, loopback)', meta, [
    { title: `hot counters, high: successful decrements/s (${o.counters} counters, C=${o.concurrency})`, unit: 'dec/s', bars: contention.filter((r) => r.variant === 'high').map((r) => ({ label: r.impl, value: r.successPerSec, color: colorOf(r.impl), note: r.retries ? `(${fmt(r.retriesPerSuccess, 1)} retries/dec)` : '' })) },
    { title: `hot counters, low: drain rate (stock ${o.lowStart}/counter)`, unit: 'dec/s', bars: contention.filter((r) => r.variant === 'low').map((r) => ({ label: r.impl, value: r.successPerSec, color: colorOf(r.impl) })) },
    { title: 'lock acquire/release', unit: 'pairs/s', bars: locks.map((r) => ({ label: `${r.case}: ${r.impl}`, value: r.pairsPerSec, color: colorOf(r.impl) })) },
    { title: 'watch delivery lag (send -> receive)', unit: 'ms', bars: watches.flatMap((r) => [
      { label: `W=${r.watchers} p50`, value: r.lagP50, color: '#f4a3a3' },
      { label: `W=${r.watchers} p99`, value: r.lagP99, color: '#d62728' },
      { label: `W=${r.watchers} p999`, value: r.lagP999, color: '#8b0000' },
    ]) },
    { title: 'watch events/s per watcher (mean)', unit: 'events/s', bars: watches.map((r) => ({ label: `W=${r.watchers}`, value: r.eventsPerSecMean, color: '#d62728', note: `(writer ${fmt(r.writerPutsPerSec, 0)} puts/s)` })) },
  ]));
  console.log(`\nwrote ${base}.json and ${base}.svg`);
}

main()
  .catch((e: Error) => {
    process.exitCode = 1;
    console.error(`primitives-bench: ${e.message}`);
  })
  .finally(() => stopAll().then(() => process.exit()));
