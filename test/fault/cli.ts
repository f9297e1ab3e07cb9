// npm run fault -- --workload register|list-append|bank --nemesis kill,pause,partition,delay,membership
//   --time-limit 60 --concurrency 10 --rate 200 [--nodes 3|5] [--seed S] [--consistency linearizable]
// Exit 0 when every check passed, 1 when a check failed, 2 when a check was unknown (time limit)
// or the run could not finish, 3 on bad usage, 130 on Ctrl-C.

import { Command, CommanderError, Option } from 'commander';
import { relative } from 'node:path';
import { totals } from './lib/history.js';
import { NEMESIS_NAMES, PARTITION_KINDS, type NemesisName, type PartitionKind } from './lib/nemesis.js';
import { NotBuiltError, runFault, type Progress, type RunResult } from './lib/runner.js';
import { PLANTED_BUGS, WORKLOAD_NAMES, type PlantedBug, type WorkloadName } from './lib/workload.js';

const CONSISTENCIES = ['linearizable', 'lease', 'session', 'stale'] as const;

class UsageError extends Error {}

function int(name: string, lo: number, hi: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < lo || n > hi) throw new UsageError(`${name} must be an integer in ${lo}..${hi}, got '${v}'`);
    return n;
  };
}

function positive(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!(Number.isFinite(n) && n > 0)) throw new UsageError(`${name} must be a positive number, got '${v}'`);
    return n;
  };
}

function nemesisList(v: string): NemesisName[] {
  if (v === '' || v === 'none') return [];
  const names = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!(NEMESIS_NAMES as readonly string[]).includes(n)) throw new UsageError(`unknown nemesis '${n}' (use ${NEMESIS_NAMES.join(', ')})`);
  }
  return names as NemesisName[];
}

function partitionKinds(v: string): PartitionKind[] {
  const kinds = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const k of kinds) if (!(PARTITION_KINDS as readonly string[]).includes(k)) throw new UsageError(`unknown partition '${k}' (use ${PARTITION_KINDS.join(', ')})`);
  return kinds as PartitionKind[];
}

function program(): Command {
  return new Command('fault')
    .description('Jepsen-style fault injection against a real kvd cluster; writes store/<workload>/<timestamp>/')
    .requiredOption('--workload <name>', WORKLOAD_NAMES.join('|'))
    .option('--nemesis <list>', `comma-separated: ${NEMESIS_NAMES.join(',')} (or none)`, 'kill,partition')
    .option('--time-limit <s>', 'seconds of workload', positive('--time-limit'), 60)
    .option('--concurrency <n>', 'client workers', int('--concurrency', 1, 1000), 10)
    .option('--rate <ops/s>', 'target ops/s over all workers', positive('--rate'), 200)
    .option('--nodes <n>', 'cluster size', int('--nodes', 1, 9), 3)
    .option('--seed <n>', 'seed of every random choice (default: random)', int('--seed', 0, 2 ** 31 - 1))
    .addOption(new Option('--consistency <mode>', 'read consistency of the workload reads (refused with "not built yet" if the server answers UNIMPLEMENTED)').choices([...CONSISTENCIES]).default('linearizable'))
    .option('--tick-ms <ms>', 'kvd --tick-ms (election timeout is 10 ticks)', int('--tick-ms', 5, 1000), 50)
    .option('--op-timeout-ms <ms>', 'deadline of one client op', int('--op-timeout-ms', 50, 60_000), 1500)
    .option('--nemesis-interval <s>', 'mean quiet gap and mean fault window', positive('--nemesis-interval'), 5)
    .option('--recover <s>', 'time the healed cluster gets to catch up before the final reads', positive('--recover'), 20)
    .option('--check-timeout <s>', 'checker time limit', positive('--check-timeout'), 120)
    .option('--partitions <kinds>', `partition shapes to draw from: ${PARTITION_KINDS.join(',')} (default all)`)
    .addOption(new Option('--pause-target <who>', 'whom the pause nemesis stops (any = leader or random 50/50)').choices(['any', 'leader']).default('any'))
    .option('--pause-min-ms <ms>', 'shortest SIGSTOP window (default 3 x election timeout = 30 ticks)', int('--pause-min-ms', 0, 600_000))
    .option('--clock-rates <list>', 'clock nemesis: rates to draw from, e.g. 0.2,0.5 (default 0.2,0.5,0.9,1.25,2)')
    .option('--clock-leader-isolated', 'clock nemesis: always skew the leader, then cut it off')
    .option('--store <dir>', 'parent of the run directories', 'store')
    .option('--keep-data', 'keep node data dirs even when the run passed')
    .addOption(new Option('--clients <how>', 'shared: all workers call through one KvClient (overlapping calls are coalesced into KV.Batch); per-worker: one each').choices(['shared', 'per-worker']).default('shared'))
    .addOption(new Option('--planted-bug <bug>', 'TEST ONLY: plant a client bug the checker must catch').choices([...PLANTED_BUGS]).hideHelp())
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
}

interface Opts {
  workload: string;
  nemesis: string;
  timeLimit: number;
  concurrency: number;
  rate: number;
  nodes: number;
  seed?: number;
  consistency: (typeof CONSISTENCIES)[number];
  tickMs: number;
  opTimeoutMs: number;
  nemesisInterval: number;
  recover: number;
  checkTimeout: number;
  store: string;
  partitions?: string;
  keepData?: boolean;
  pauseTarget: 'any' | 'leader';
  clients: 'shared' | 'per-worker';
  pauseMinMs?: number;
  clockRates?: string;
  clockLeaderIsolated?: boolean;
  plantedBug?: PlantedBug;
}

function progressLine(p: Progress): string {
  const t = p.phase === 'running' ? `${p.elapsedS.toFixed(0)}/${p.timeLimitS}s` : p.phase;
  return `[${t}] ops ${p.ops}  ok ${p.ok}  fail ${p.fail}  info ${p.info}  | ${p.fault}`;
}

function pad(s: string | number, n: number): string {
  return String(s).padEnd(n);
}

function verdict(v: boolean | 'unknown'): string {
  return v === true ? 'PASS' : v === false ? 'FAIL' : 'UNKNOWN';
}

export function summary(r: RunResult): string {
  const lines: string[] = [];
  const o = r.options;
  lines.push('', `${o.workload} / ${o.nemeses.join(',') || 'none'} / ${o.nodes} nodes / seed ${o.seed}: ${verdict(r.valid)}${r.aborted ? ' (aborted)' : ''}`);
  lines.push(`${r.opsPerSec.toFixed(1)} ops/s over ${(r.workloadMs / 1000).toFixed(1)} s; checker ${(r.checkMs / 1000).toFixed(2)} s`, '');
  lines.push(`${pad('f', 12)}${pad('ok', 8)}${pad('fail', 8)}${pad('info', 8)}`);
  for (const [f, c] of Object.entries(r.counts).sort()) lines.push(`${pad(f, 12)}${pad(c.ok, 8)}${pad(c.fail, 8)}${pad(c.info, 8)}`);
  const t = totals(r.counts);
  lines.push(`${pad('total', 12)}${pad(t.ok, 8)}${pad(t.fail, 8)}${pad(t.info, 8)}`, '');
  const byNemesis = new Map<string, number>();
  for (const f of r.faults) byNemesis.set(f.nemesis, (byNemesis.get(f.nemesis) ?? 0) + 1);
  lines.push(`faults injected: ${r.faults.length}${byNemesis.size ? ` (${[...byNemesis].map(([n, c]) => `${n} ${c}`).join(', ')})` : ''}`);
  for (const c of r.checks) {
    lines.push(`check ${c.name}: ${verdict(c.valid)} (${(c.elapsedMs / 1000).toFixed(2)} s)`);
    for (const e of c.explanations.slice(0, 12)) lines.push(`  ${e}`);
  }
  for (const n of r.notes) lines.push(`note: ${n.split('\n')[0]}`);
  lines.push('', `run dir: ${relative(process.cwd(), r.runDir) || '.'} (report.html, history.jsonl, results.json, logs/)`);
  return lines.join('\n');
}

/** argv without any --seed (both `--seed N` and `--seed=N`), so the command can name the seed used. */
function withoutSeed(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--seed') i++;
    else if (!argv[i]!.startsWith('--seed=')) out.push(argv[i]!);
  }
  return out;
}

export async function main(argv: string[]): Promise<number> {
  let opts: Opts;
  try {
    const p = program();
    p.parse(argv, { from: 'user' });
    opts = p.opts<Opts>();
    if (!(WORKLOAD_NAMES as readonly string[]).includes(opts.workload)) throw new UsageError(`unknown workload '${opts.workload}' (use ${WORKLOAD_NAMES.join(', ')})`);
    nemesisList(opts.nemesis);
    if (opts.partitions) partitionKinds(opts.partitions);
  } catch (e) {
    if (e instanceof CommanderError) return e.code === 'commander.helpDisplayed' || e.code === 'commander.help' ? 0 : 3;
    process.stderr.write(`fault: ${(e as Error).message}\n`);
    return 3;
  }
  const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 31);
  const abort = new AbortController();
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130); // second Ctrl-C: the exit hook still SIGKILLs every node
    interrupted = true;
    process.stderr.write('\ninterrupted: stopping every node and writing what was recorded (Ctrl-C again to exit at once)\n');
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  const tty = process.stderr.isTTY;
  let lastPrinted = 0;
  const onProgress = (p: Progress) => {
    if (tty) process.stderr.write(`\r\x1b[2K${progressLine(p).slice(0, (process.stderr.columns ?? 120) - 1)}`);
    else if (Date.now() - lastPrinted > 5000 || p.phase === 'checking') {
      lastPrinted = Date.now();
      process.stderr.write(`${progressLine(p)}\n`);
    }
  };
  const onLog = (msg: string) => {
    if (tty) process.stderr.write(`\r\x1b[2K${msg}\n`);
  };
  try {
    const command = `npm run fault -- ${[...withoutSeed(argv), '--seed', String(seed)].join(' ')}`;
    const r = await runFault({
      workload: opts.workload as WorkloadName,
      nemeses: nemesisList(opts.nemesis),
      timeLimitS: opts.timeLimit,
      concurrency: opts.concurrency,
      rate: opts.rate,
      nodes: opts.nodes,
      seed,
      consistency: opts.consistency,
      tickMs: opts.tickMs,
      opTimeoutMs: opts.opTimeoutMs,
      nemesisIntervalS: opts.nemesisInterval,
      recoverS: opts.recover,
      checkTimeoutS: opts.checkTimeout,
      storeDir: opts.store,
      ...(opts.partitions ? { partitionKinds: partitionKinds(opts.partitions) } : {}),
      ...(opts.keepData ? { keepData: true } : {}),
      pauseTarget: opts.pauseTarget,
      clients: opts.clients,
      ...(opts.pauseMinMs !== undefined ? { pauseMinMs: opts.pauseMinMs } : {}),
      ...(opts.clockRates ? { clockRates: clockRatesOf(opts.clockRates) } : {}),
      ...(opts.clockLeaderIsolated ? { clockLeaderIsolated: true } : {}),
      ...(opts.plantedBug ? { plantedBug: opts.plantedBug } : {}),
      command,
      onProgress,
      onLog,
      signal: abort.signal,
    });
    if (tty) process.stderr.write('\r\x1b[2K');
    process.stdout.write(`${summary(r)}\n`);
    if (r.aborted) return 130;
    return r.valid === true ? 0 : r.valid === false ? 1 : 2;
  } catch (e) {
    if (tty) process.stderr.write('\n');
    process.stderr.write(`fault: ${e instanceof NotBuiltError ? e.message : ((e as Error).stack ?? String(e))}\n`);
    return e instanceof NotBuiltError ? 3 : 2;
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`fault: ${(e as Error).stack ?? e}\n`);
      process.exit(2);
    },
  );
}

function clockRatesOf(list: string): number[] {
  return list.split(',').map((x) => {
    const r = Number(x);
    if (!(r >= 0.1 && r <= 10)) throw new UsageError(`--clock-rates: ${x} is not a rate in [0.1, 10]`);
    return r;
  });
}
