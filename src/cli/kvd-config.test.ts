// kvd's flags and --config file: a misspelt option in the file used to be ignored silently
// (the node ran with the default), and a bad file was reported without its name.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { configFromFlags, parsePeers, UsageError } from './kvd.js';

const dir = mkdtempSync(join(tmpdir(), 'kvd-config-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const BASE = { id: '1', dataDir: '/tmp/x', clientAddr: '127.0.0.1:7001', peerAddr: '127.0.0.1:7101' };

describe('kvd --config', () => {
  it('takes every option from the file (numbers as numbers), and flags win over it', () => {
    const p = file('ok.json', JSON.stringify({ ...BASE, tickMs: 50, electionTicks: 12, retainRevisions: 0, logLevel: 'info' }));
    const cfg = configFromFlags({ config: p, electionTicks: '15' });
    expect(cfg.id).toBe(1);
    expect(cfg.dataDir).toBe('/tmp/x');
    expect(cfg.tickIntervalMs).toBe(50);
    expect(cfg.electionTimeoutTicks).toBe(15);
    expect(cfg.stateMachine?.retainRevisions).toBe(0);
    expect(cfg.logLevel).toBe('info');
    expect(cfg.initialCluster).toEqual([{ id: 1, peerAddr: '127.0.0.1:7101', clientAddr: '127.0.0.1:7001' }]);
  });

  it('refuses an unknown option, naming it and the known ones', () => {
    const p = file('typo.json', JSON.stringify({ ...BASE, tickMS: 50 }));
    expect(() => configFromFlags({ config: p })).toThrow(UsageError);
    expect(() => configFromFlags({ config: p })).toThrow(`--config ${p}: unknown option "tickMS" (known: id, dataDir,`);
  });

  it('names the file when it is missing, not JSON, or not an object', () => {
    expect(() => configFromFlags({ config: join(dir, 'absent.json') })).toThrow(`--config ${join(dir, 'absent.json')}: cannot read it (ENOENT)`);
    const bad = file('bad.json', '{nope');
    expect(() => configFromFlags({ config: bad })).toThrow(`--config ${bad}: not valid JSON`);
    const arr = file('arr.json', '[1]');
    expect(() => configFromFlags({ config: arr })).toThrow(`--config ${arr}: must hold a JSON object of options`);
  });
});

describe('kvd flags', () => {
  it('needs a data directory and both addresses, and this node among --peers', () => {
    expect(() => configFromFlags({ id: '1', clientAddr: 'a:1', peerAddr: 'b:2' })).toThrow('--data-dir is required');
    expect(() => configFromFlags({ id: '1', dataDir: '/tmp/x', peerAddr: 'b:2' })).toThrow('--peer-addr and --client-addr are required');
    expect(() => configFromFlags({ ...BASE, peers: '2=127.0.0.1:7102' })).toThrow("--peers must include this node's id 1");
    expect(() => configFromFlags({ ...BASE, id: '0' })).toThrow('--id must be a positive integer, got "0"');
  });

  it('picks the peer transport: tcp by default, grpc on request, anything else refused by name', () => {
    expect(configFromFlags(BASE).peerTransport).toBe('tcp');
    expect(configFromFlags({ ...BASE, peerTransport: 'grpc' }).peerTransport).toBe('grpc');
    expect(() => configFromFlags({ ...BASE, peerTransport: 'udp' })).toThrow('--peer-transport must be one of tcp, grpc, got "udp"');
  });

  it('parses --peers entries with and without client addresses', () => {
    expect(parsePeers('1=h:1/c:1, 2=h:2')).toEqual([
      { id: 1, peerAddr: 'h:1', clientAddr: 'c:1' },
      { id: 2, peerAddr: 'h:2', clientAddr: '' },
    ]);
    expect(() => parsePeers('garbage')).toThrow('--peers entry "garbage" is not id=peerHost:port[/clientHost:port]');
  });
});
