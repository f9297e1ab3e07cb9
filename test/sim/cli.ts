// `npm run sim -- --seeds N [--nodes 3|5] [--seed S] [--ticks T] [--first-seed F]`
// Runs seeded simulations, shows progress, ends with `seeds: N, violations: V`. A failure
// prints its seed, the one command that replays it, and the last events before it.

import { Command } from 'commander';
import { defaultSimOptions, runSimulation, type SimResult } from './simulation.js';

interface CliOptions {
  seeds: string;
  seed?: string;
  firstSeed: string;
  nodes: string;
  ticks?: string;
  quiet?: boolean;
}

function parseIntStrict(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got "${v}"`);
  return n;
}

function report(r: SimResult, nodes: number, ticks: number): void {
  console.log(`\nVIOLATION at seed ${r.seed}, tick ${r.violation!.tick}: ${r.violation!.message}`);
  console.log(`replay: npm run sim -- --seed ${r.seed} --nodes ${nodes} --ticks ${ticks}`);
  console.log('last events:');
  for (const line of r.trace) console.log(`  ${line}`);
}

function main(): void {
  const program = new Command()
    .name('sim')
    .description('Deterministic simulation of the Raft core under faults')
    .option('--seeds <n>', 'number of seeds to run', '100')
    .option('--seed <s>', 'run exactly this seed (replay)')
    .option('--first-seed <f>', 'first seed of the range', '1')
    .option('--nodes <n>', 'cluster size (3 or 5)', '3')
    .option('--ticks <t>', 'ticks of the faulty phase per seed')
    .option('--quiet', 'no progress line')
    .parse();
  const o = program.opts<CliOptions>();
  const nodes = parseIntStrict('nodes', o.nodes);
  if (nodes < 1 || nodes > 9) throw new Error('--nodes must be between 1 and 9');
  const seeds = o.seed !== undefined ? [parseIntStrict('seed', o.seed)] : range(parseIntStrict('first-seed', o.firstSeed), parseIntStrict('seeds', o.seeds));
  const started = Date.now();
  let violations = 0;
  let writes = 0;
  let reads = 0;
  let ticks = 0;
  for (let i = 0; i < seeds.length; i++) {
    const opts = { ...defaultSimOptions(seeds[i]!), nodes };
    if (o.ticks !== undefined) opts.ticks = parseIntStrict('ticks', o.ticks);
    ticks = opts.ticks;
    const r = runSimulation(opts);
    writes += r.stats.writesAcked;
    reads += r.stats.readsServed;
    if (!r.ok) {
      violations++;
      report(r, nodes, opts.ticks);
    }
    if (!o.quiet && (i % 10 === 9 || i === seeds.length - 1) && process.stdout.isTTY) {
      const elapsedS = (Date.now() - started) / 1000;
      process.stdout.write(`\r${i + 1}/${seeds.length} seeds, ${violations} violations, ${((i + 1) / elapsedS * 60).toFixed(0)} seeds/min   `);
    }
  }
  const elapsedS = (Date.now() - started) / 1000;
  if (process.stdout.isTTY && !o.quiet) process.stdout.write('\n');
  console.log(`acked writes: ${writes}, served reads: ${reads}, ticks/seed: ${ticks}, elapsed: ${elapsedS.toFixed(1)} s, ${(seeds.length / elapsedS * 60).toFixed(0)} seeds/min`);
  console.log(`seeds: ${seeds.length}, violations: ${violations}`);
  process.exitCode = violations > 0 ? 1 : 0;
}

function range(first: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => first + i);
}

main();
