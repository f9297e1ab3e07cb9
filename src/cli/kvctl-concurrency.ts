// kvctl commands for leases, locks and elections (wired in by kvctl.ts):
//
//   lease grant TTL [--id N]           prints the lease id
//   lease keepalive ID [--once]        keeps ID alive until Ctrl-C (or once); exit 1 when lost
//   lease revoke ID
//   lease ttl ID [--keys]
//   lock NAME [--ttl S] -- COMMAND...  runs COMMAND while holding lock NAME; the fencing token
//                                      is in env RAFTKV_FENCING_TOKEN (and RAFTKV_LOCK_NAME,
//                                      RAFTKV_LOCK_KEY); exits with COMMAND's exit code
//   elect NAME [VALUE] [--ttl S]       campaigns, prints when leader, holds it until Ctrl-C
//   elect NAME --listen                prints the leader and every change until Ctrl-C
//   elect NAME --leader                prints the current leader (exit 1 if none)

import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { KvClientError, StatusCode, text, type KvClient } from '../client/index.js';
import type { KvctlIo } from './kvctl.js';

export interface ConcurrencyCtx {
  getClient(): KvClient;
  print(human: () => string, data: () => unknown): void;
  json(): boolean;
  io: KvctlIo;
  setExit(code: number): void;
  usage(msg: string): Error;
}

function posInt(s: string, what: string, ctx: ConcurrencyCtx): number {
  if (!/^[0-9]+$/.test(s)) throw ctx.usage(`${what} must be a positive integer, got "${s}"`);
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 1) throw ctx.usage(`${what} must be a positive integer, got "${s}"`);
  return n;
}

/** Resolves on SIGINT/SIGTERM (handlers removed on resolve). */
function interrupted(): { promise: Promise<void>; dispose(): void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  const on = () => resolve();
  process.once('SIGINT', on);
  process.once('SIGTERM', on);
  return {
    promise,
    dispose() {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
    },
  };
}

function lineForwarder(write: (s: string) => void): { push(chunk: Buffer): void; flush(): void } {
  let buf = '';
  return {
    push(chunk) {
      buf += chunk.toString('utf8');
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const l of lines) write(l);
    },
    flush() {
      if (buf.length > 0) write(buf);
      buf = '';
    },
  };
}

export function addConcurrencyCommands(program: Command, ctx: ConcurrencyCtx): void {
  const lease = program.command('lease').description('leases: keys attached to a lease vanish when it expires or is revoked');
  lease
    .command('grant')
    .description('grant a lease of TTL seconds; prints its id')
    .argument('<ttl>')
    .option('--id <n>', 'ask for this lease id')
    .action(async (ttl: string, o: { id?: string }) => {
      const r = await ctx.getClient().lease.grant(posInt(ttl, 'TTL', ctx), o.id !== undefined ? { id: posInt(o.id, '--id', ctx) } : {});
      ctx.print(() => `lease ${r.id} granted with TTL ${r.ttl}s`, () => r);
    });
  lease
    .command('keepalive')
    .description('keep lease ID alive until Ctrl-C (exit 1 if it is lost)')
    .argument('<id>')
    .option('--once', 'send one keepalive and exit')
    .action(async (id: string, o: { once?: boolean }) => {
      const c = ctx.getClient();
      const leaseId = posInt(id, 'ID', ctx);
      if (o.once) {
        const ttl = await c.lease.keepAliveOnce(leaseId);
        ctx.print(() => `lease ${leaseId} keepalived with TTL ${ttl}`, () => ({ id: leaseId, ttl }));
        return;
      }
      const ka = c.lease.keepAlive(leaseId);
      const stop = interrupted();
      await ka.ready;
      if (ka.lastTtl > 0) ctx.print(() => `lease ${leaseId} keepalived with TTL ${ka.lastTtl}`, () => ({ id: leaseId, ttl: ka.lastTtl }));
      const lost = await Promise.race([ka.lost, stop.promise.then(() => undefined)]);
      stop.dispose();
      ka.close();
      if (lost) throw lost;
    });
  lease
    .command('revoke')
    .description('revoke lease ID (deletes its keys)')
    .argument('<id>')
    .action(async (id: string) => {
      const r = await ctx.getClient().lease.revoke(posInt(id, 'ID', ctx));
      ctx.print(() => `lease ${id} revoked (revision ${r.revision})`, () => r);
    });
  lease
    .command('ttl')
    .description('remaining and granted TTL of lease ID')
    .argument('<id>')
    .option('--keys', 'list the attached keys')
    .action(async (id: string, o: { keys?: boolean }) => {
      const r = await ctx.getClient().lease.ttl(posInt(id, 'ID', ctx), { keys: o.keys === true });
      ctx.print(
        () => `lease ${r.id}: ${r.ttl}s left of ${r.grantedTtl}s${o.keys ? `\nkeys: ${r.keys.map((k) => text(k)).join(', ')}` : ''}`,
        () => ({ id: r.id, ttl: r.ttl, grantedTtl: r.grantedTtl, keys: r.keys.map((k) => text(k)) }),
      );
    });

  program
    .command('lock')
    .description('run COMMAND while holding lock NAME (fencing token in env RAFTKV_FENCING_TOKEN)')
    .argument('<name>')
    .argument('<command...>', 'the command and its arguments (after --)')
    .option('--ttl <s>', 'TTL of the lock\'s lease (kept alive while COMMAND runs)', '10')
    .action(async (name: string, command: string[], o: { ttl: string }) => {
      if (name.length === 0) throw ctx.usage('lock name must not be empty');
      const c = ctx.getClient();
      const lk = await c.lock(name, { ttlSeconds: posInt(o.ttl, '--ttl', ctx) });
      if (!ctx.json()) ctx.io.err(`kvctl: holding lock ${name} (token ${lk.token})`);
      try {
        const child = spawn(command[0]!, command.slice(1), {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, RAFTKV_FENCING_TOKEN: String(lk.token), RAFTKV_LOCK_NAME: name, RAFTKV_LOCK_KEY: text(lk.key) },
        });
        const out = lineForwarder((l) => ctx.io.out(l));
        const err = lineForwarder((l) => ctx.io.err(l));
        child.stdout.on('data', (d: Buffer) => out.push(d));
        child.stderr.on('data', (d: Buffer) => err.push(d));
        const code = await new Promise<number>((resolve) => {
          child.on('error', (e) => {
            ctx.io.err(`kvctl: cannot run ${command[0]}: ${e.message}`);
            resolve(127);
          });
          child.on('close', (status, signal) => resolve(status ?? (signal ? 128 : 1)));
          void lk.lost.then((e) => {
            ctx.io.err(`kvctl: lost lock ${name}: ${e.details}; stopping the command`);
            child.kill('SIGTERM');
          });
        });
        out.flush();
        err.flush();
        ctx.setExit(code);
      } finally {
        await lk.release().catch(() => undefined);
      }
    });

  program
    .command('elect')
    .description('campaign for leadership of NAME with VALUE and hold it until Ctrl-C (or --listen / --leader)')
    .argument('<name>')
    .argument('[value]')
    .option('--ttl <s>', 'TTL of the campaign\'s lease', '10')
    .option('--listen', 'print the leader and every change instead of campaigning')
    .option('--leader', 'print the current leader and exit')
    .action(async (name: string, value: string | undefined, o: { ttl: string; listen?: boolean; leader?: boolean }) => {
      const c = ctx.getClient();
      const el = c.election(name);
      const show = (l: { key: Uint8Array; value: Uint8Array; rev: number; lease: number } | undefined) =>
        ctx.print(
          () => (l ? `leader: ${text(l.value)} (key ${text(l.key)}, rev ${l.rev})` : 'no leader'),
          () => (l ? { leader: { key: text(l.key), value: text(l.value), rev: l.rev, lease: l.lease } } : { leader: null }),
        );
      if (o.leader) {
        const l = await el.leader();
        show(l);
        if (!l) ctx.setExit(1);
        return;
      }
      const stop = interrupted();
      if (o.listen) {
        const ac = new AbortController();
        void stop.promise.then(() => ac.abort());
        for await (const ev of el.observe({ signal: ac.signal })) show(ev.leader);
        stop.dispose();
        return;
      }
      if (value === undefined) throw ctx.usage('elect NAME VALUE: a value is needed to campaign');
      const r = await el.campaign(value, { ttlSeconds: posInt(o.ttl, '--ttl', ctx) });
      ctx.print(() => `elected: ${name} = ${value} (rev ${r.rev}); Ctrl-C resigns`, () => ({ elected: true, key: text(r.key), rev: r.rev, lease: r.lease }));
      const lost = await Promise.race([el.lost ?? new Promise<never>(() => undefined), stop.promise.then(() => undefined)]);
      stop.dispose();
      await el.resign().catch(() => undefined);
      if (lost) throw new KvClientError(StatusCode.UNAVAILABLE, `lost leadership of ${name}: ${lost.details}`);
    });
}
