// Assembles one node: LevelDB, Raft storage, state machine, fault-injectable peer transport
// (TCP or gRPC, see config.ts), the Ready loop, and the client-facing gRPC server.

import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { kvServiceDefinition } from '../wire/kv-proto.js';
import { bindInsecure } from '../wire/grpc-service.js';
import { KvStateMachine } from '../state-machine/index.js';
import { LevelRaftStorage, openNodeDb, type NodeDb } from '../storage/index.js';
import { FaultyTransport, GrpcTransport, TcpTransport } from '../transport/index.js';
import type { NodeConfig } from './config.js';
import { KvService } from './kv-service.js';
import { NodeHost } from './node-host.js';
import { concurrencyServiceDefinition } from '../wire/kv-proto.js';
import { LeaseKeeper } from './lease-keeper.js';
import { LockService } from './lock-service.js';
import { WatchService } from './watch-service.js';

/** How long stop() lets in-flight client calls finish before closing their connections. */
const SHUTDOWN_GRACE_MS = 2_000;

export interface RunningNode {
  host: NodeHost;
  /** The leader-side lease clock (leases, locks, elections). */
  leaseKeeper: LeaseKeeper;
  clientPort: number;
  peerPort: number;
  stop(): Promise<void>;
}

export async function startNode(cfg: NodeConfig): Promise<RunningNode> {
  const log = pino({ level: cfg.logLevel, base: { node: cfg.id } }, pino.destination(2));
  const db: NodeDb = await openNodeDb(cfg.dataDir);
  // What a failed start must undo, newest first (e.g. the client address is taken: the started
  // host must not keep ticking on a closed db).
  const undo: Array<() => unknown> = [() => db.close()];
  try {
    const storage = await LevelRaftStorage.open(db);
    const sm = await KvStateMachine.open(db, cfg.stateMachine);
    const peerTransport = await (cfg.peerTransport === 'grpc' ? GrpcTransport : TcpTransport).start({ id: cfg.id, listenAddr: cfg.peerAddr, logger: log });
    undo.push(() => peerTransport.close());
    const transport = new FaultyTransport(peerTransport);
    const host = await NodeHost.start(cfg, { db, storage, sm, transport, log });
    undo.push(() => host.stop());
    const service = new KvService(host, transport);
    const server = new grpc.Server({
      'grpc.max_receive_message_length': cfg.limits.maxRequestBytes,
      // Nothing of ours reads channelz; its bookkeeping wraps every call.
      'grpc.enable_channelz': 0,
    });
    server.addService(kvServiceDefinition('KV'), service.handlers());
    server.addService(kvServiceDefinition('Cluster'), service.clusterHandlers());
    server.addService(kvServiceDefinition('Admin'), service.adminHandlers());
    const keeper = new LeaseKeeper(host, { now: () => host.nowMs() });
    const lockService = new LockService(host, keeper);
    server.addService(concurrencyServiceDefinition('Lease'), lockService.leaseHandlers());
    server.addService(concurrencyServiceDefinition('Lock'), lockService.lockHandlers());
    server.addService(concurrencyServiceDefinition('Election'), lockService.electionHandlers());
    keeper.start();
    undo.push(() => keeper.stop());
    server.addService(kvServiceDefinition('Watch'), new WatchService(host).handlers());
    const clientPort = await bindInsecure(server, cfg.clientAddr, 'client address');
    log.info({ clientPort, peerPort: peerTransport.port }, 'node started');
    return {
      host,
      leaseKeeper: keeper,
      clientPort,
      peerPort: peerTransport.port,
      stop: async () => {
        keeper.stop();
        lockService.close();
        // Stop the host first so long-lived streams (watches) end and in-flight calls fail fast;
        // then give the gRPC server a bounded grace period before forcing it down.
        const hostStopped = host.stop();
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, SHUTDOWN_GRACE_MS);
          server.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        });
        await hostStopped;
        await transport.close();
        await peerTransport.close();
        await db.close();
      },
    };
  } catch (e) {
    for (const step of undo.reverse()) await step();
    throw e;
  }
}
