// `kvd`: runs one raftkv node in the foreground until SIGINT/SIGTERM.
//
//   kvd --id 1 --data-dir data/n1 --client-addr 127.0.0.1:7001 --peer-addr 127.0.0.1:7101 \
//       --peers 1=127.0.0.1:7101/127.0.0.1:7001,2=127.0.0.1:7102/127.0.0.1:7002,3=127.0.0.1:7103/127.0.0.1:7003
//
// `--peers` lists the founding members as id=peerAddr/clientAddr. A node that joins a running
// cluster (after `kvctl member add`) gets `--join` and the current members in `--peers`.

import { readFileSync } from 'node:fs';
import { format } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { Command } from 'commander';
import pino from 'pino';
import { defaultNodeConfig, PEER_TRANSPORT_KINDS, type NodeConfig, type PeerSpec, type PeerTransportKind } from '../server/config.js';
import { startNode } from '../server/server.js';

interface KvdFlags {
  id?: string;
  dataDir?: string;
  clientAddr?: string;
  peerAddr?: string;
  peerTransport?: string;
  peers?: string;
  join?: boolean;
  tickMs?: string;
  electionTicks?: string;
  snapshotEntries?: string;
  compactionLag?: string;
  retainRevisions?: string;
  commitNoticeDelayMs?: string;
  logLevel?: string;
  config?: string;
}

export class UsageError extends Error {}

export function parsePeers(spec: string): PeerSpec[] {
  return spec
    .split(',')
    .filter((s) => s.trim() !== '')
    .map((item) => {
      const m = /^(\d+)=([^/\s]+:\d+)(?:\/([^/\s]+:\d+))?$/.exec(item.trim());
      if (!m) throw new UsageError(`--peers entry "${item}" is not id=peerHost:port[/clientHost:port]`);
      return { id: Number(m[1]), peerAddr: m[2]!, clientAddr: m[3] ?? '' };
    });
}

function positiveInt(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`--${name} must be a positive integer, got "${v}"`);
  return n;
}

function nonNegativeInt(name: string, v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(String(v)) || !Number.isSafeInteger(n)) throw new UsageError(`--${name} must be a non-negative integer, got "${v}"`);
  return n;
}

/** kvd's flags (the one list: --help and the --config file keys both come from it). */
function kvdProgram(): Command {
  return new Command()
    .name('kvd')
    .description('Run one raftkv node')
    .option('--id <n>', 'member id (positive integer)')
    .option('--data-dir <dir>', 'data directory (LevelDB); one node per directory')
    .option('--client-addr <host:port>', 'client gRPC address')
    .option('--peer-addr <host:port>', 'peer (Raft) address')
    .option('--peer-transport <kind>', 'peer protocol: tcp (framed messages on plain sockets) or grpc; the same on every member (default tcp)')
    .option('--peers <list>', 'founding members: id=peerHost:port/clientHost:port,...')
    .option('--join', 'join a running cluster (start empty, wait for the leader)')
    .option('--tick-ms <ms>', 'Raft tick interval in milliseconds (default 100)')
    .option('--election-ticks <n>', 'election timeout in ticks (default 10)')
    .option('--snapshot-entries <n>', 'snapshot and compact every N applied entries (default 10000)')
    .option('--compaction-lag <n>', 'entries kept behind a snapshot for slow followers (default 1000)')
    .option('--retain-revisions <n>', 'MVCC: automatic compaction keeps the last N revisions readable, 0 = off (default 100000; must match on every member)')
    .option('--commit-notice-delay-ms <ms>', 'a leader holds commit-only appends this long so the next append carries them, 0 = send at once (default 2)')
    .option('--log-level <level>', 'pino level: fatal|error|warn|info|debug (default warn)')
    .option('--config <file>', 'JSON file with any of the flags above (camelCase); flags win');
}

/** The options a --config file may set: every flag but --config, in camelCase. */
const CONFIG_FILE_KEYS: ReadonlySet<string> = new Set(
  kvdProgram()
    .options.map((o) => o.attributeName())
    .filter((k) => k !== 'config'),
);

/** Reads a --config file; a misspelt option is an error, not silently the default. */
export function readConfigFile(path: string): Partial<KvdFlags> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--config ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--config ${path}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UsageError(`--config ${path}: must hold a JSON object of options`);
  const unknown = Object.keys(parsed).filter((k) => !CONFIG_FILE_KEYS.has(k));
  if (unknown.length > 0) throw new UsageError(`--config ${path}: unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')} (known: ${[...CONFIG_FILE_KEYS].join(', ')})`);
  // Numbers are fine in a file: the flag parsers read them like flag strings.
  return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, typeof v === 'number' ? String(v) : v])) as Partial<KvdFlags>;
}

function peerTransportKind(v: string | undefined): PeerTransportKind {
  if (v === undefined) return 'tcp';
  if (!(PEER_TRANSPORT_KINDS as readonly string[]).includes(v)) throw new UsageError(`--peer-transport must be one of ${PEER_TRANSPORT_KINDS.join(', ')}, got ${JSON.stringify(v)}`);
  return v as PeerTransportKind;
}

export function configFromFlags(f: KvdFlags): NodeConfig {
  const file: Partial<KvdFlags> = f.config ? readConfigFile(f.config) : {};
  const merged: KvdFlags = { ...file, ...Object.fromEntries(Object.entries(f).filter(([, v]) => v !== undefined)) };
  const id = positiveInt('id', merged.id, 0);
  if (!merged.dataDir) throw new UsageError('--data-dir is required');
  if (!merged.peerAddr || !merged.clientAddr) throw new UsageError('--peer-addr and --client-addr are required');
  const peers = parsePeers(merged.peers ?? `${id}=${merged.peerAddr}/${merged.clientAddr}`);
  if (!merged.join && !peers.some((p) => p.id === id)) throw new UsageError(`--peers must include this node's id ${id}`);
  for (const p of peers) if (p.id === id && !p.clientAddr) p.clientAddr = merged.clientAddr;
  return defaultNodeConfig({
    id,
    dataDir: merged.dataDir,
    clientAddr: merged.clientAddr,
    peerAddr: merged.peerAddr,
    peerTransport: peerTransportKind(merged.peerTransport),
    initialCluster: peers,
    join: merged.join ?? false,
    tickIntervalMs: positiveInt('tick-ms', merged.tickMs, 100),
    electionTimeoutTicks: positiveInt('election-ticks', merged.electionTicks, 10),
    snapshotEveryEntries: positiveInt('snapshot-entries', merged.snapshotEntries, 10_000),
    compactionLagEntries: positiveInt('compaction-lag', merged.compactionLag, 1_000),
    ...(merged.commitNoticeDelayMs !== undefined ? { commitNoticeDelayMs: nonNegativeInt('commit-notice-delay-ms', merged.commitNoticeDelayMs) } : {}),
    logLevel: merged.logLevel ?? 'warn',
    ...(merged.retainRevisions !== undefined ? { stateMachine: { retainRevisions: nonNegativeInt('retain-revisions', merged.retainRevisions) } } : {}),
  });
}

export async function main(): Promise<void> {
  const program = kvdProgram();
  program.parse();
  let cfg: NodeConfig;
  try {
    cfg = configFromFlags(program.opts<KvdFlags>());
  } catch (e) {
    process.stderr.write(`kvd: ${(e as Error).message}\n`);
    process.exit(2);
  }
  // grpc-js writes its own errors to stderr ("E No address added ..."); what matters of them
  // reaches the user as our own message, the rest is detail for --log-level debug.
  const grpcLog = pino({ level: cfg.logLevel, base: { node: cfg.id, component: 'grpc-js' } }, pino.destination(2));
  grpc.setLogger({ error: (...args: unknown[]) => grpcLog.debug(format(...args)) });
  let node;
  try {
    node = await startNode(cfg);
  } catch (e) {
    process.stderr.write(`kvd: cannot start node ${cfg.id}: ${(e as Error).message}\n`);
    process.exit(1);
  }
  process.stderr.write(`kvd: node ${cfg.id} serving clients on ${cfg.clientAddr}, peers on ${cfg.peerAddr}\n`);
  const conflicts = node.host.memberAddressConflicts;
  if (conflicts.length > 0) {
    const list = conflicts.map((c) => `node ${c.id} is stored at ${c.stored.peerAddr}/${c.stored.clientAddr}, --peers says ${c.given.peerAddr}/${c.given.clientAddr}`).join('; ');
    process.stderr.write(
      `kvd: warning: ${cfg.dataDir} holds a membership with other addresses than --peers (${list}). ` +
        'The stored addresses are used (--peers only bootstraps a new cluster), so the members must run there; ' +
        'restart with the original addresses, or use fresh data directories.\n',
    );
  }
  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`kvd: node ${cfg.id} stopping (${signal})\n`);
    await node.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  const fatalCheck = setInterval(() => {
    if (!node.host.fatal) return;
    clearInterval(fatalCheck);
    process.stderr.write(`kvd: node ${cfg.id} hit a fatal error: ${node.host.fatal.message}\n`);
    process.exit(70);
  }, 200);
}

