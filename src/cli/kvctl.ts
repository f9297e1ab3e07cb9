// kvctl: the command-line client of raftkv, a thin layer over the SDK (src/client).
//
//   kvctl [--endpoints a,b,c] [--json] [--timeout-ms N] <command>
//     put KEY VALUE [--prev-kv]
//     get KEY [--rev N] [--consistency MODE ...]
//     del KEY [--prefix] [--range-end END] [--prev-kv]
//     range KEY [--prefix] [--range-end END] [--limit N] [--keys-only] [--count-only] [--rev N]
//     compact REV                       drop history below REV (reads below it: OUT_OF_RANGE)
//     counter add KEY DELTA [--min N] [--max N]   atomic bounded add (DELTA may be negative)
//     txn [--file PATH]                 JSON spec on stdin (or in PATH), see TXN_HELP
//     status                            one row per endpoint
//     member list | add ID PEER [CLIENT] | add-learner ID PEER [CLIENT] | promote ID | remove ID
//     leader transfer ID
//     lease grant TTL | keepalive ID | revoke ID | ttl ID     see kvctl-concurrency.ts
//     lock NAME -- COMMAND...           run COMMAND holding lock NAME (env RAFTKV_FENCING_TOKEN)
//     elect NAME VALUE | NAME --listen | NAME --leader
//
// Keys and values on the command line and in txn specs are UTF-8 text; --json prints them
// as UTF-8 strings too. Human-readable tables by default. Errors go to stderr (as JSON with
// --json). Exit codes: 0 success, 1 the cluster answered with an error or could not be
// reached, 2 bad usage (unknown command or flag, malformed argument or txn spec).
// `get` of a missing key is not an error: exit 0, nothing on stdout (`"found": false` with --json).

import { readFile } from 'node:fs/promises';
import { Command, CommanderError, Option } from 'commander';
import {
  KvClient,
  KvClientError,
  text,
  type KeyValue,
  type Member,
  type StatusResult,
  type TxnOpResult,
  type TxnSpec,
  type ReadCallOptions,
} from '../client/index.js';
import { addConcurrencyCommands } from './kvctl-concurrency.js';

export const DEFAULT_ENDPOINTS = '127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003';
export const DEFAULT_TIMEOUT_MS = 5_000;

export const EXIT_OK = 0;
export const EXIT_SERVER_ERROR = 1;
export const EXIT_USAGE = 2;

export const TXN_HELP = `
The txn spec is one JSON object (keys and values are UTF-8 strings):

  {
    "compare": [
      { "key": "k", "value": "v1" },                         // value of k == "v1"
      { "key": "k", "result": "!=", "value": "v2" },
      { "key": "lock", "version": 0 },                       // lock does not exist
      { "key": "k", "result": ">", "modRevision": 10 },      // also createRevision
    ],
    "success": [
      { "put": { "key": "k", "value": "v2", "prevKv": true } },
      { "get": { "key": "k" } },
      { "range": { "key": "p/", "prefix": true, "limit": 10 } },
      { "delete": { "key": "old/", "prefix": true } }
    ],
    "failure": [ { "get": { "key": "k" } } ]
  }

"result" is one of = != > < (default =); exactly one of value, version, createRevision,
modRevision per compare. All compares must hold for "success" to run; otherwise "failure"
runs. The whole txn is one atomic write (one revision). (Comments above are illustration
only; JSON has none.)`;

export interface KvctlIo {
  out(text: string): void;
  err(text: string): void;
  /** The whole of standard input (only read by `txn` without --file). */
  readStdin(): Promise<string>;
}

class UsageError extends Error {}

interface GlobalOpts {
  endpoints: string;
  json?: boolean;
  timeoutMs: string;
}

// ------------------------------------------------------------------ output helpers

/** Renders rows as an aligned text table with a header row. */
export function table(headers: string[], rows: Array<Array<string | number | boolean>>): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => String(c)))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

/** JSON-friendly copy: bytes become UTF-8 strings. */
function jsonable(v: unknown): unknown {
  if (v instanceof Uint8Array) return text(v);
  if (Array.isArray(v)) return v.map(jsonable);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = jsonable(x);
    return out;
  }
  return v;
}

function kvJson(kv: KeyValue): Record<string, unknown> {
  return jsonable(kv) as Record<string, unknown>;
}

function parseCount(s: string, what: string): number {
  if (!/^\d+$/.test(s)) throw new UsageError(`${what} must be a non-negative integer, got "${s}"`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${what} is too large: ${s}`);
  return n;
}

/** --range-end: the two characters \0 stand for a single NUL byte ("every key >= KEY"), which argv cannot carry. */
/** kvctl's read flags, validated (usage errors exit 2). */
function readArgs(o: { consistency?: string; minRevision?: string; maxStalenessMs?: string }): ReadCallOptions {
  const modes = ['linearizable', 'lease', 'session', 'stale'] as const;
  const consistency = o.consistency?.toLowerCase();
  if (consistency !== undefined && !modes.includes(consistency as (typeof modes)[number])) {
    throw new UsageError(`--consistency must be one of ${modes.join(', ')}, got "${o.consistency}"`);
  }
  const num = (flag: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`${flag} must be a non-negative integer, got "${v}"`);
    return n;
  };
  return {
    ...(consistency ? { consistency: consistency as (typeof modes)[number] } : {}),
    ...(o.minRevision !== undefined ? { minRevision: num('--min-revision', o.minRevision) } : {}),
    ...(o.maxStalenessMs !== undefined ? { maxStalenessMs: num('--max-staleness-ms', o.maxStalenessMs) } : {}),
  };
}

function rangeEndArg(s: string | undefined): string | Uint8Array | undefined {
  return s === '\\0' ? Uint8Array.of(0) : s;
}

function parseInteger(s: string, what: string): number {
  if (!/^-?\d+$/.test(s)) throw new UsageError(`${what} must be an integer, got "${s}"`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${what} is out of range: ${s}`);
  return n;
}

function revArg(rev: string | undefined): { revision?: number } {
  return rev === undefined ? {} : { revision: parseCount(rev, '--rev') };
}

function parseId(s: string): number {
  const n = parseCount(s, 'member id');
  return n;
}

function errorLine(e: KvClientError): string {
  const extra: string[] = [];
  if (e.endpoint) extra.push(`endpoint ${e.endpoint}`);
  if (e.leaderHint) extra.push(`leader ${e.leaderHint.id}${e.leaderHint.addr ? ` at ${e.leaderHint.addr}` : ''}`);
  if (e.attempts > 1) extra.push(`${e.attempts} attempts`);
  return `kvctl: ${e.codeName}: ${e.details}${extra.length ? ` (${extra.join('; ')})` : ''}`;
}

function errorJson(e: KvClientError): string {
  return JSON.stringify({
    error: { code: e.code, codeName: e.codeName, details: e.details, endpoint: e.endpoint, leaderHint: e.leaderHint, attempts: e.attempts },
  });
}

function membersTable(members: Member[], leaderId?: number): string {
  const rows = [...members]
    .sort((a, b) => a.id - b.id)
    .map((m) => [m.id, m.isLearner ? 'learner' : m.id === leaderId ? 'voter (leader)' : 'voter', m.peerAddr, m.clientAddr || '-']);
  return table(['ID', 'STATUS', 'PEER_ADDR', 'CLIENT_ADDR'], rows);
}

function txnOpLine(r: TxnOpResult, i: number): string {
  switch (r.type) {
    case 'put':
      return `[${i}] put: revision ${r.revision}${r.prevKv ? ` (previous: ${text(r.prevKv.value)})` : ''}`;
    case 'delete':
      return `[${i}] delete: ${r.deleted} deleted`;
    case 'range':
      return `[${i}] range: ${r.count} key(s)${r.kvs.map((kv) => `\n    ${text(kv.key)} = ${text(kv.value)}`).join('')}`;
  }
}

// ------------------------------------------------------------------ the program

export async function runKvctl(argv: string[], io: KvctlIo = processIo()): Promise<number> {
  let client: KvClient | undefined;
  let exitCode = EXIT_OK;
  let globals: GlobalOpts = { endpoints: DEFAULT_ENDPOINTS, timeoutMs: String(DEFAULT_TIMEOUT_MS) };

  const getClient = (): KvClient => {
    if (client) return client;
    const endpoints = globals.endpoints
      .split(',')
      .map((e) => e.trim())
      .filter((e) => e.length > 0);
    if (endpoints.length === 0) throw new UsageError('--endpoints needs at least one host:port');
    for (const e of endpoints) if (!/^[^\s:]+:\d+$/.test(e)) throw new UsageError(`endpoint must be host:port, got "${e}"`);
    client = new KvClient({ endpoints, defaultTimeoutMs: parseCount(globals.timeoutMs, '--timeout-ms') });
    return client;
  };
  const json = (): boolean => globals.json === true;
  const print = (human: () => string, data: () => unknown): void => {
    io.out(json() ? JSON.stringify(jsonable(data())) : human());
  };

  const program = new Command('kvctl')
    .description('command-line client of a raftkv cluster')
    .addOption(new Option('--endpoints <list>', 'comma-separated client addresses (host:port)').default(DEFAULT_ENDPOINTS))
    .option('--json', 'machine-readable JSON output (one document on stdout)')
    .addOption(new Option('--timeout-ms <ms>', 'deadline of each command, retries included').default(String(DEFAULT_TIMEOUT_MS)))
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.replace(/\n$/, '')), writeErr: (s) => io.err(s.replace(/\n$/, '')) })
    .showHelpAfterError()
    .hook('preAction', (_this, action) => {
      globals = action.optsWithGlobals() as GlobalOpts;
    });

  program
    .command('put')
    .description('write KEY = VALUE')
    .argument('<key>')
    .argument('<value>')
    .option('--prev-kv', 'print the previous value')
    .option('--lease <id>', 'attach the key to this lease')
    .action(async (key: string, value: string, o: { prevKv?: boolean; lease?: string }) => {
      const r = await getClient().put(key, value, { prevKv: o.prevKv === true, ...(o.lease !== undefined ? { lease: parseId(o.lease) } : {}) });
      print(
        () => `OK (revision ${r.revision})${r.prevKv ? `\nprevious: ${text(r.prevKv.value)}` : ''}`,
        () => ({ revision: r.revision, ...(r.prevKv ? { prevKv: kvJson(r.prevKv) } : {}) }),
      );
    });

  program
    .command('get')
    .description('print the value of KEY (nothing if absent)')
    .argument('<key>')
    .option('--consistency <mode>', 'linearizable (default) | lease | session | stale')
    .option('--min-revision <rev>', 'session reads: wait until this revision is applied (a session token\'s revision)')
    .option('--max-staleness-ms <ms>', 'stale reads: refuse if the node may be staler than this')
    .option('--rev <n>', 'read the value as of this past revision')
    .action(async (key: string, o: { consistency?: string; minRevision?: string; maxStalenessMs?: string; rev?: string }) => {
      const r = await getClient().get(key, { ...readArgs(o), ...revArg(o.rev) });
      if (json()) {
        io.out(JSON.stringify({ key, found: r.kv !== undefined, ...(r.kv ? kvJson(r.kv) : {}), header: r.header }));
      } else if (r.value !== undefined) {
        io.out(text(r.value));
      }
    });

  program
    .command('watch')
    .description('print changes to KEY (or every key with the prefix KEY) as they happen; Ctrl-C stops')
    .argument('<key>')
    .option('--prefix', 'watch every key starting with KEY')
    .option('--rev <n>', 'start at this revision (replays history since then); default: from now')
    .option('--count <n>', 'exit after this many events')
    .action(async (key: string, o: { prefix?: boolean; rev?: string; count?: string }) => {
      const startRevision = o.rev === undefined ? undefined : parseCount(o.rev, '--rev');
      const limit = o.count === undefined ? Infinity : parseCount(o.count, '--count');
      const stop = new AbortController();
      process.once('SIGINT', () => stop.abort());
      let seen = 0;
      try {
        for await (const batch of getClient().watch(key, { prefix: o.prefix === true, ...(startRevision ? { startRevision } : {}), signal: stop.signal })) {
          for (const e of batch.events) {
            io.out(json() ? JSON.stringify({ type: e.type, revision: e.revision, ...kvJson(e.kv) }) : `${e.type.toUpperCase()} ${text(e.kv.key)}${e.type === 'put' ? ` = ${text(e.kv.value)}` : ''} (revision ${e.revision})`);
            if (++seen >= limit) return;
          }
        }
      } catch (e) {
        if (!stop.signal.aborted) throw e;
      }
    });

  program
    .command('del')
    .description('delete KEY (or every key with the prefix KEY, or [KEY, END))')
    .argument('<key>')
    .option('--prefix', 'delete every key starting with KEY')
    .option('--range-end <end>', 'delete [KEY, END); END = \\0 (backslash zero) means every key >= KEY')
    .option('--prev-kv', 'print the deleted key-values')
    .action(async (key: string, o: { prefix?: boolean; rangeEnd?: string; prevKv?: boolean }) => {
      const r = await getClient().delete(key, { prefix: o.prefix === true, rangeEnd: rangeEndArg(o.rangeEnd), prevKv: o.prevKv === true });
      print(
        () => [`deleted ${r.deleted} (revision ${r.revision})`, ...r.prevKvs.map((kv) => `${text(kv.key)} = ${text(kv.value)}`)].join('\n'),
        () => ({ deleted: r.deleted, revision: r.revision, prevKvs: r.prevKvs.map(kvJson) }),
      );
    });

  program
    .command('range')
    .description('list the key-values in a range (KEY alone = just that key)')
    .argument('<key>')
    .option('--prefix', 'every key starting with KEY')
    .option('--range-end <end>', 'the keys in [KEY, END); END = \\0 (backslash zero) means every key >= KEY')
    .option('--limit <n>', 'at most N key-values')
    .option('--keys-only', 'keys without values')
    .option('--count-only', 'only the number of keys')
    .option('--rev <n>', 'read the range as of this past revision')
    .action(async (key: string, o: { prefix?: boolean; rangeEnd?: string; limit?: string; keysOnly?: boolean; countOnly?: boolean; rev?: string }) => {
      const limit = o.limit === undefined ? undefined : parseCount(o.limit, '--limit');
      const r = await getClient().range({ key, prefix: o.prefix === true, rangeEnd: rangeEndArg(o.rangeEnd), limit, keysOnly: o.keysOnly === true, countOnly: o.countOnly === true }, revArg(o.rev));
      print(
        () => {
          if (o.countOnly) return String(r.count);
          const t = o.keysOnly
            ? table(['KEY'], r.kvs.map((kv) => [text(kv.key)]))
            : table(['KEY', 'VALUE', 'CREATE_REV', 'MOD_REV', 'VERSION'], r.kvs.map((kv) => [text(kv.key), text(kv.value), kv.createRevision, kv.modRevision, kv.version]));
          return `${t}\n(${r.kvs.length} of ${r.count} key(s)${r.more ? ', more left out by --limit' : ''}; revision ${r.header.revision})`;
        },
        () => ({ kvs: r.kvs.map(kvJson), count: r.count, more: r.more, header: r.header }),
      );
    });

  program
    .command('txn')
    .description('run one atomic transaction from a JSON spec on stdin (or --file)')
    .option('--file <path>', 'read the spec from this file instead of stdin')
    .addHelpText('after', TXN_HELP)
    .action(async (o: { file?: string }) => {
      let raw: string;
      try {
        raw = o.file ? await readFile(o.file, 'utf8') : await io.readStdin();
      } catch (e) {
        throw new UsageError(`cannot read the txn spec: ${(e as Error).message}`);
      }
      let spec: TxnSpec;
      try {
        spec = JSON.parse(raw) as TxnSpec;
      } catch (e) {
        throw new UsageError(`the txn spec is not valid JSON: ${(e as Error).message}`);
      }
      if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) throw new UsageError('the txn spec must be a JSON object with compare/success/failure');
      for (const k of Object.keys(spec)) if (!['compare', 'success', 'failure'].includes(k)) throw new UsageError(`unknown txn spec field "${k}"`);
      for (const k of ['compare', 'success', 'failure'] as const) if (spec[k] !== undefined && !Array.isArray(spec[k])) throw new UsageError(`txn spec "${k}" must be an array`);
      const r = await getClient().txn(spec);
      print(
        () => [`${r.succeeded ? 'SUCCEEDED' : 'FAILED'} (revision ${r.revision})`, ...r.responses.map(txnOpLine)].join('\n'),
        () => ({ succeeded: r.succeeded, revision: r.revision, responses: r.responses }),
      );
    });

  program
    .command('compact')
    .description('compact the MVCC history: reads below REV fail afterwards')
    .argument('<rev>')
    .action(async (rev: string) => {
      const r = await getClient().compact(parseCount(rev, 'REV'));
      print(
        () => `compacted up to revision ${r.compactRevision} (current revision ${r.revision})`,
        () => r,
      );
    });

  const counter = program.command('counter').description('atomic integer counters (values are decimal text)');
  counter
    .command('add')
    .description('add DELTA (may be negative) to the counter KEY; refused if the result would leave [--min, --max]')
    .argument('<key>')
    .argument('<delta>')
    .option('--min <n>', 'the new value must be >= N')
    .option('--max <n>', 'the new value must be <= N')
    .action(async (key: string, delta: string, o: { min?: string; max?: string }) => {
      const opts = { ...(o.min !== undefined ? { min: parseInteger(o.min, '--min') } : {}), ...(o.max !== undefined ? { max: parseInteger(o.max, '--max') } : {}) };
      const r = await getClient().add(key, parseInteger(delta, 'DELTA'), opts);
      print(
        () => `${r.value} (revision ${r.revision})`,
        () => r,
      );
    });

  program
    .command('status')
    .description('status of every endpoint')
    .action(async () => {
      const all = await getClient().statusAll();
      const row = (s: StatusResult) => [s.endpoint, s.memberId, s.role, s.raftTerm, s.leaderId || '-', s.commitIndex, s.appliedIndex, s.revision, ''];
      print(
        () =>
          table(
            ['ENDPOINT', 'ID', 'ROLE', 'TERM', 'LEADER', 'COMMIT', 'APPLIED', 'REVISION', 'ERROR'],
            all.map((r) => (r.ok ? row(r.status) : [r.endpoint, '-', '-', '-', '-', '-', '-', '-', `${r.error.codeName}: ${r.error.details}`])),
          ),
        () =>
          all.map((r) => {
            if (!r.ok) return { endpoint: r.endpoint, error: { code: r.error.code, codeName: r.error.codeName, details: r.error.details } };
            const { members: _m, ...s } = r.status;
            return s;
          }),
      );
      if (all.every((r) => !r.ok)) exitCode = EXIT_SERVER_ERROR;
      for (const r of all) if (!r.ok && !json()) io.err(errorLine(r.error));
    });

  const member = program.command('member').description('list or change the membership');
  member
    .command('list')
    .description('the members as the leader sees them')
    .action(async () => {
      const c = getClient();
      const st = await c.status();
      print(
        () => membersTable(st.members, st.leaderId),
        () => ({ leaderId: st.leaderId, members: st.members }),
      );
    });
  for (const [name, learner] of [
    ['add', false],
    ['add-learner', true],
  ] as const) {
    member
      .command(name)
      .description(learner ? 'add a non-voting learner (promote it once it caught up)' : 'add a voter')
      .argument('<id>', 'member id (0 = let the cluster pick)')
      .argument('<peer-addr>', 'host:port of its peer (Raft) listener')
      .argument('[client-addr]', 'host:port of its client API')
      .action(async (id: string, peerAddr: string, clientAddr: string | undefined) => {
        const c = getClient();
        const r = learner ? await c.memberAddLearner(parseId(id), peerAddr, clientAddr ?? '') : await c.memberAdd(parseId(id), peerAddr, clientAddr ?? '');
        print(
          () => `added member ${r.member.id} as ${r.member.isLearner ? 'learner' : 'voter'}\n${membersTable(r.members)}`,
          () => r,
        );
      });
  }
  member
    .command('promote')
    .description("make a learner a voter (refused until its log reaches 90% of the leader's)")
    .argument('<id>')
    .action(async (id: string) => {
      const ms = await getClient().memberPromote(parseId(id));
      print(() => `promoted member ${id}\n${membersTable(ms)}`, () => ({ members: ms }));
    });
  member
    .command('remove')
    .description('remove a member')
    .argument('<id>')
    .action(async (id: string) => {
      const ms = await getClient().memberRemove(parseId(id));
      print(() => `removed member ${id}\n${membersTable(ms)}`, () => ({ members: ms }));
    });

  const leader = program.command('leader').description('leadership');
  leader
    .command('transfer')
    .description('hand leadership to member ID')
    .argument('<id>')
    .action(async (id: string) => {
      const newLeader = await getClient().leaderTransfer(parseId(id));
      print(() => `leader is now ${newLeader}`, () => ({ leaderId: newLeader }));
    });

  addConcurrencyCommands(program, {
    getClient,
    print,
    json,
    io,
    setExit: (code) => (exitCode = code),
    usage: (msg) => new UsageError(msg),
  });

  try {
    if (argv.length === 0) {
      program.outputHelp({ error: true });
      return EXIT_USAGE;
    }
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help / --version exit 0; everything else commander rejects (unknown command or
      // option, missing argument, a group command without its subcommand) is usage.
      return e.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    if (e instanceof UsageError) {
      io.err(json() ? JSON.stringify({ error: { codeName: 'USAGE', details: e.message } }) : `kvctl: ${e.message}`);
      return EXIT_USAGE;
    }
    if (e instanceof KvClientError) {
      if (e.opts.notSent && e.codeName === 'INVALID_ARGUMENT') {
        // Refused by the SDK before sending (e.g. a malformed txn spec): a usage error.
        io.err(json() ? errorJson(e) : `kvctl: ${e.details}`);
        return EXIT_USAGE;
      }
      io.err(json() ? errorJson(e) : errorLine(e));
      return EXIT_SERVER_ERROR;
    }
    io.err(`kvctl: ${(e as Error)?.stack ?? String(e)}`);
    return EXIT_SERVER_ERROR;
  } finally {
    client?.close();
  }
}

export function processIo(): KvctlIo {
  return {
    out: (t) => process.stdout.write(`${t}\n`),
    err: (t) => process.stderr.write(`${t}\n`),
    readStdin: async () => {
      if (process.stdin.isTTY) throw new Error('no spec on stdin (pipe a JSON spec in, or pass --file)');
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    },
  };
}
