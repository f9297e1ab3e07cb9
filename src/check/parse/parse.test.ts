// Parsers: every format into the common History, and malformed input reported with a position,
// never a hang or a crash.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHARED_HISTORIES_DIR } from '../corpus.js';
import { HistoryParseError } from '../history.js';
import { seededRandom } from '../lin/random.js';
import { readEdnForms } from './edn-reader.js';
import { parseEdnHistory } from './edn.js';
import { inferFormat, parseHistory, type HistoryFormat } from './index.js';
import { parseJsonl } from './jsonl.js';
import { parsePorcupineKv } from './porcupine-kv.js';
import { parsePorcupineLog } from './porcupine-log.js';

function expectParseError(run: () => unknown, line: number, column?: number): void {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(HistoryParseError);
    expect((error as HistoryParseError).line).toBe(line);
    if (column !== undefined) expect((error as HistoryParseError).column).toBe(column);
    return;
  }
  throw new Error('expected a HistoryParseError');
}

describe('EDN reader', () => {
  it('reads Jepsen values: keywords, nil, vectors, lists, maps, sets, strings, chars, tags', () => {
    const { forms } = readEdnForms('[:a nil true 1 -2 3.5 7N "s\\"q" \\c (1 2) #{1} {:k [1]} #inst "2020" #_ ignored :end]');
    expect(forms).toEqual([['a', null, true, 1, -2, 3.5, 7, 's"q', 'c', [1, 2], [1], { k: [1] }, '2020', 'end']]);
  });

  it('accepts missing commas, comments and a stream of top-level maps', () => {
    const text = '; header\n{:type :invoke :f :read :process 1 :value nil} ; trailing\n{:type :ok, :f :read, :process 1, :value 3}\n';
    const history = parseEdnHistory(text);
    expect(history).toEqual([
      { index: 0, process: 1, type: 'invoke', f: 'read', value: null },
      { index: 1, process: 1, type: 'ok', f: 'read', value: 3 },
    ]);
  });

  it('reads a list of ops and keeps :index, :time, :error and :nemesis processes', () => {
    const history = parseEdnHistory('({:type :info :f :start :process :nemesis :time 5 :index 9 :error [:x "y"]})');
    expect(history).toEqual([{ index: 9, process: 'nemesis', type: 'info', f: 'start', value: null, time: 5, error: ['x', 'y'] }]);
  });

  it('reports malformed input at its line and column', () => {
    expectParseError(() => parseEdnHistory('[{:type :ok}\n {:type :ok'), 2, 2);
    expectParseError(() => parseEdnHistory('[{:type :ok :f :read :process 1}]\n]'), 2, 1);
    expectParseError(() => parseEdnHistory('\n\n  {:type :ok :f}'), 3, 3);
    expectParseError(() => parseEdnHistory('[{:type :bogus :f :read :process 1}]'), 1, 2);
    expectParseError(() => parseEdnHistory('{:type :ok :f :read :value "unterminated}'), 1, 28);
  });

  it('does not overflow the stack on deep nesting', () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    expect(readEdnForms(deep).forms).toHaveLength(1);
  });
});

describe('Porcupine formats', () => {
  it('reads an etcd log with tabs or spaces', () => {
    const log = 'INFO  jepsen.util - 0\t:invoke\t:cas\t[1 2]\nINFO  jepsen.util - 0   :fail   :cas    [1 2]\n\nINFO  jepsen.util - 3\t:info\t:write\t:timed-out\n';
    expect(parsePorcupineLog(log)).toEqual([
      { index: 0, process: 0, type: 'invoke', f: 'cas', value: [1, 2] },
      { index: 1, process: 0, type: 'fail', f: 'cas', value: [1, 2] },
      { index: 2, process: 3, type: 'info', f: 'write', value: 'timed-out' },
    ]);
    expectParseError(() => parsePorcupineLog('INFO  jepsen.util - 0\t:invoke\t:read\tnil\ngarbage'), 2, 1);
    expectParseError(() => parsePorcupineLog('INFO  jepsen.util - 0\t:invoke\t:read\t{x'), 1, 37);
  });

  it('reads a kv log and requires keys', () => {
    const kv = '{:process 0, :type :invoke, :f :get, :key "a", :value nil}\n{:process 0, :type :ok, :f :get, :key "a", :value "x"}\n';
    expect(parsePorcupineKv(kv).map((op) => [op.key, op.value])).toEqual([['a', null], ['a', 'x']]);
    expectParseError(() => parsePorcupineKv(`${kv}\n{:process 1, :type :invoke, :f :get, :value nil}`), 4);
  });
});

describe('JSON lines', () => {
  it('reads our format', () => {
    const text = '{"process":1,"type":"invoke","f":"put","key":"k","value":"v","time":10}\n\n{"process":1,"type":"ok","f":"put","key":"k","value":"v","time":20}\n';
    expect(parseJsonl(text)).toEqual([
      { index: 0, process: 1, type: 'invoke', f: 'put', key: 'k', value: 'v', time: 10 },
      { index: 1, process: 1, type: 'ok', f: 'put', key: 'k', value: 'v', time: 20 },
    ]);
  });

  it('reports bad lines', () => {
    expectParseError(() => parseJsonl('{"process":1,"type":"invoke","f":"get","value":null}\n{"process":1,"type":'), 2);
    expectParseError(() => parseJsonl('{"type":"invoke","f":"get","value":null}'), 1, 1);
    expectParseError(() => parseJsonl('[1]'), 1, 1);
  });
});

describe('format inference', () => {
  const cases: [string, string, HistoryFormat][] = [
    ['a.edn', '', 'edn'],
    ['a.log', '', 'porcupine-log'],
    ['a.jsonl', '', 'jsonl'],
    ['a.json', '', 'elle-json'],
    ['c01-ok.txt', '{:process 0, :type :invoke, :f :get, :key "0", :value nil}', 'porcupine-kv'],
    ['stdin', 'INFO  jepsen.util - 0\t:invoke\t:read\tnil', 'porcupine-log'],
    ['stdin', '; comment\n[{:type :invoke}]', 'edn'],
    ['stdin', '[{"type":"invoke"}]', 'elle-json'],
    ['stdin', '{"process":1}', 'jsonl'],
  ];
  it.each(cases)('%s %j -> %s', (file, text, format) => {
    expect(inferFormat(file, text)).toBe(format);
  });

  it('refuses to guess on unknown content', () => {
    expectParseError(() => parseHistory('hello', { file: 'x.dat' }), 1, 1);
  });
});

/** Mutations that turn a valid file into a plausible broken one. */
function mutate(text: string, random: () => number): string {
  const at = Math.floor(random() * text.length);
  const junk = ['[', ']', '{', '}', '(', ')', '"', '\\', ':', '#', '#_', ';', '\n', ',', 'nil', '#{', '\u0000'];
  switch (Math.floor(random() * 4)) {
    case 0:
      return text.slice(0, at); // truncated
    case 1:
      return text.slice(0, at) + text.slice(at + 1 + Math.floor(random() * 5));
    case 2:
      return text.slice(0, at) + junk[Math.floor(random() * junk.length)] + text.slice(at);
    default:
      return text.slice(0, at) + text.slice(at).replace(/[\]}")]/, '');
  }
}

describe('malformed input never hangs or crashes', () => {
  const samples: [string, HistoryFormat][] = [
    ['knossos/cas-register/bad/cas-failure.edn', 'edn'],
    ['knossos/multi-register/good/multi-register.edn', 'edn'],
    ['elle/si-without-g-single.edn', 'edn'],
    ['porcupine/jepsen/etcd_000.log', 'porcupine-log'],
    ['porcupine/kv/c01-ok.txt', 'porcupine-kv'],
    ['elle-cli/knossos-json/mutex-bad-etcd.json', 'elle-json'],
  ];
  it.each(samples)('%s: 300 random mutations each parse or fail with a position', (name, format) => {
    const text = readFileSync(path.join(SHARED_HISTORIES_DIR, name), 'utf8').slice(0, 4000);
    const random = seededRandom(name.length * 7919);
    for (let i = 0; i < 300; i++) {
      const broken = mutate(text, random);
      try {
        parseHistory(broken, { file: name, format });
      } catch (error) {
        expect(error, `mutation ${i}`).toBeInstanceOf(HistoryParseError);
        expect((error as HistoryParseError).line).toBeGreaterThanOrEqual(1);
        expect((error as HistoryParseError).column).toBeGreaterThanOrEqual(1);
      }
    }
  });
});
