// A small EDN reader for Jepsen histories.
//
// Why not `edn-data` (installed, tried first): on these inputs it silently returns only the FIRST
// top-level form of a stream (Elle's `*.edn` and Porcupine's kv logs are streams of maps), returns
// `null` for truncated input ("[{:a 1"), silently drops a dangling map key ("{:a 1 :b}"), and its
// errors carry no line/column. A history checker must neither lose ops silently nor accept
// malformed files, so we read EDN ourselves. The reader is iterative (explicit stack), so deeply
// nested input cannot overflow the call stack, and every loop advances the cursor, so it cannot hang.

import { HistoryParseError } from '../history.js';

/** A parsed EDN value: keywords and symbols become strings, nil null, collections arrays/objects. */
export type EdnValue = null | boolean | number | string | EdnValue[] | { [key: string]: EdnValue };

/** All top-level forms of a text, with the character offset at which each starts. */
export interface EdnForms {
  forms: EdnValue[];
  offsets: number[];
  /** For a top-level vector/list: the offset of each of its elements (used to locate bad ops). */
  childOffsets: number[][];
}

type CollectionKind = 'vector' | 'list' | 'map' | 'set';

interface Frame {
  kind: CollectionKind;
  close: string;
  items: EdnValue[];
  startOffset: number;
  /** Offsets of items; kept only for top-level collections (depth 1) to bound memory. */
  itemOffsets: number[] | undefined;
}

/** Characters that end a symbol/keyword/number token. */
function isDelimiter(code: number): boolean {
  // whitespace, comma, brackets, quote, semicolon
  return (
    code <= 32 || code === 44 || code === 91 || code === 93 || code === 40 || code === 41 ||
    code === 123 || code === 125 || code === 34 || code === 59
  );
}

/** Converts an offset into a 1-based line and column (only computed on error). */
export function lineColumnAt(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: end - lineStart + 1 };
}

export function ednError(text: string, file: string | undefined, offset: number, message: string): HistoryParseError {
  const { line, column } = lineColumnAt(text, offset);
  return new HistoryParseError(message, file, line, column);
}

const STRING_ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', '/': '/' };
const NAMED_CHARS: Record<string, string> = { newline: '\n', space: ' ', tab: '\t', return: '\r', backspace: '\b', formfeed: '\f' };

export class EdnReader {
  private pos = 0;
  private readonly stack: Frame[] = [];
  /** Number of `#_` markers waiting for the next complete form, per depth. */
  private readonly discards: number[] = [0];

  constructor(
    private readonly text: string,
    private readonly file: string | undefined,
  ) {}

  readAll(): EdnForms {
    const result: EdnForms = { forms: [], offsets: [], childOffsets: [] };
    const topFrame: Frame = { kind: 'vector', close: '', items: result.forms, startOffset: 0, itemOffsets: result.offsets };
    let topChildOffsets: number[] = [];
    for (;;) {
      const start = this.skipWhitespace();
      if (this.pos >= this.text.length) break;
      const value = this.readForm(start, (frame) => {
        topChildOffsets = frame.itemOffsets ?? [];
      });
      if (value === DISCARDED) continue;
      topFrame.items.push(value);
      result.offsets.push(start);
      result.childOffsets.push(topChildOffsets);
      topChildOffsets = [];
    }
    if (this.discards[0] !== 0) throw this.error(this.text.length, 'end of input after #_ (nothing to discard)');
    return result;
  }

  private error(offset: number, message: string): HistoryParseError {
    return ednError(this.text, this.file, offset, message);
  }

  /** Skips whitespace, commas and `;` comments; returns the new position. */
  private skipWhitespace(): number {
    const text = this.text;
    let pos = this.pos;
    while (pos < text.length) {
      const code = text.charCodeAt(pos);
      if (code <= 32 || code === 44) {
        pos++;
      } else if (code === 59) {
        while (pos < text.length && text.charCodeAt(pos) !== 10) pos++;
      } else {
        break;
      }
    }
    this.pos = pos;
    return pos;
  }

  /**
   * Reads one complete top-level form starting at `start`, iteratively. `onTopCollection` receives
   * the frame of the outermost collection so the caller can keep its element offsets.
   */
  private readForm(start: number, onTopCollection: (frame: Frame) => void): EdnValue | typeof DISCARDED {
    const stack = this.stack;
    stack.length = 0;
    this.discards.length = 1;
    for (;;) {
      const tokenStart = this.skipWhitespace();
      if (this.pos >= this.text.length) {
        const open = stack[stack.length - 1];
        throw this.error(open ? open.startOffset : start, open ? `unclosed ${open.kind} (expected '${open.close}')` : 'unexpected end of input');
      }
      const atom = this.readToken(tokenStart, stack.length === 0);
      if (atom === OPENED) continue;
      let value = atom as EdnValue | typeof DISCARDED | typeof CLOSED;
      let valueOffset = tokenStart;
      // Attach the completed value to its parent; closing collections may complete more values.
      for (;;) {
        const depth = stack.length;
        if (value !== CLOSED && value !== DISCARDED && this.discards[depth]! > 0) {
          this.discards[depth]!--;
          value = DISCARDED;
        }
        if (depth === 0) {
          if (value === CLOSED) throw this.error(valueOffset, `unexpected '${this.text[valueOffset]}'`);
          return value;
        }
        const frame = stack[depth - 1]!;
        if (value !== CLOSED) {
          if (value !== DISCARDED) {
            frame.items.push(value);
            frame.itemOffsets?.push(valueOffset);
          }
          break;
        }
        if (this.discards[depth]! > 0) throw this.error(valueOffset, '#_ with nothing to discard before closing bracket');
        stack.pop();
        this.discards.pop();
        if (depth === 1) onTopCollection(frame);
        value = this.finishCollection(frame);
        valueOffset = frame.startOffset;
      }
    }
  }

  private finishCollection(frame: Frame): EdnValue {
    if (frame.kind !== 'map') return frame.items;
    const items = frame.items;
    if (items.length % 2 !== 0) throw this.error(frame.startOffset, 'map literal has an odd number of forms (a key without a value)');
    const obj: { [key: string]: EdnValue } = {};
    for (let i = 0; i < items.length; i += 2) {
      const key = mapKey(items[i]!);
      // Assigning "__proto__" would change the prototype instead of adding a field.
      Object.defineProperty(obj, key, { value: items[i + 1]!, enumerable: true, writable: true, configurable: true });
    }
    return obj;
  }

  /** Reads one token. Opening brackets push a frame and return OPENED; closers return CLOSED. */
  private readToken(start: number, topLevel: boolean): EdnValue | typeof OPENED | typeof CLOSED {
    const text = this.text;
    const ch = text[start]!;
    if (ch === '[' || ch === '(' || ch === '{') {
      this.pos = start + 1;
      this.open(ch === '[' ? 'vector' : ch === '(' ? 'list' : 'map', ch === '[' ? ']' : ch === '(' ? ')' : '}', start, topLevel);
      return OPENED;
    }
    if (ch === ']' || ch === ')' || ch === '}') {
      const frame = this.stack[this.stack.length - 1];
      if (!frame || frame.close !== ch) {
        throw this.error(start, frame ? `expected '${frame.close}' to close ${frame.kind} opened at ${this.where(frame.startOffset)}, got '${ch}'` : `unexpected '${ch}'`);
      }
      this.pos = start + 1;
      return CLOSED;
    }
    if (ch === '"') return this.readString(start);
    if (ch === '\\') return this.readChar(start);
    if (ch === '#') return this.readDispatch(start, topLevel);
    return this.readAtom(start);
  }

  private where(offset: number): string {
    const { line, column } = lineColumnAt(this.text, offset);
    return `${line}:${column}`;
  }

  private open(kind: CollectionKind, close: string, start: number, topLevel: boolean): void {
    this.stack.push({ kind, close, items: [], startOffset: start, itemOffsets: topLevel ? [] : undefined });
    this.discards.push(0);
  }

  private readDispatch(start: number, topLevel: boolean): typeof OPENED {
    const next = this.text[start + 1];
    if (next === '{') {
      this.pos = start + 2;
      this.open('set', '}', start, topLevel);
      return OPENED;
    }
    if (next === '_') {
      this.pos = start + 2;
      this.discards[this.stack.length]!++;
      return OPENED; // nothing completed yet; the discarded form is dropped when it completes
    }
    // A tagged literal (#inst "...", #uuid "...", #jepsen.history.Op{...}): keep the tagged form.
    let end = start + 1;
    while (end < this.text.length && !isDelimiter(this.text.charCodeAt(end))) end++;
    if (end === start + 1) throw this.error(start, `bad dispatch '#${next ?? ''}'`);
    this.pos = end;
    return OPENED; // the tag is ignored; the following form is the value
  }

  private readString(start: number): string {
    const text = this.text;
    let pos = start + 1;
    let out = '';
    let chunkStart = pos;
    while (pos < text.length) {
      const ch = text[pos]!;
      if (ch === '"') {
        out += text.slice(chunkStart, pos);
        this.pos = pos + 1;
        return out;
      }
      if (ch === '\\') {
        out += text.slice(chunkStart, pos);
        const esc = text[pos + 1];
        if (esc === 'u') {
          const hex = text.slice(pos + 2, pos + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw this.error(pos, 'bad \\u escape in string');
          out += String.fromCharCode(parseInt(hex, 16));
          pos += 6;
        } else {
          const replacement = esc === undefined ? undefined : STRING_ESCAPES[esc];
          if (replacement === undefined) throw this.error(pos, `bad escape '\\${esc ?? ''}' in string`);
          out += replacement;
          pos += 2;
        }
        chunkStart = pos;
        continue;
      }
      pos++;
    }
    throw this.error(start, 'unterminated string');
  }

  private readChar(start: number): string {
    let end = start + 2; // a backslash is always followed by at least one character
    if (end > this.text.length) throw this.error(start, 'end of input after \\');
    while (end < this.text.length && !isDelimiter(this.text.charCodeAt(end))) end++;
    const name = this.text.slice(start + 1, end);
    this.pos = end;
    if (name.length === 1) return name;
    const named = NAMED_CHARS[name];
    if (named !== undefined) return named;
    if (/^u[0-9a-fA-F]{4}$/.test(name)) return String.fromCharCode(parseInt(name.slice(1), 16));
    throw this.error(start, `bad character literal '\\${name}'`);
  }

  private readAtom(start: number): EdnValue {
    const text = this.text;
    let end = start;
    while (end < text.length && !isDelimiter(text.charCodeAt(end))) end++;
    if (end === start) throw this.error(start, `unexpected character '${text[start]}'`);
    this.pos = end;
    const token = text.slice(start, end);
    const first = token.charCodeAt(0);
    if (first === 58 /* : */) {
      if (token.length === 1) throw this.error(start, 'empty keyword');
      return token.slice(1);
    }
    if (token === 'nil') return null;
    if (token === 'true') return true;
    if (token === 'false') return false;
    const isDigit = first >= 48 && first <= 57;
    const signedDigit = (first === 45 || first === 43) && token.length > 1 && token.charCodeAt(1) >= 48 && token.charCodeAt(1) <= 57;
    if (isDigit || signedDigit) return this.parseNumber(token, start);
    return token; // a symbol: kept as its name
  }

  private parseNumber(token: string, start: number): number {
    const body = token.endsWith('N') || token.endsWith('M') ? token.slice(0, -1) : token;
    const ratio = /^([+-]?\d+)\/(\d+)$/.exec(body);
    if (ratio) return Number(ratio[1]) / Number(ratio[2]);
    const n = /^[+-]?(\d+(\.\d*)?([eE][+-]?\d+)?)$/.test(body) ? Number(body) : NaN;
    if (Number.isNaN(n)) throw this.error(start, `bad number '${token}'`);
    return n;
  }
}

const OPENED = Symbol('opened');
const CLOSED = Symbol('closed');
const DISCARDED = Symbol('discarded');

function mapKey(key: EdnValue): string {
  if (typeof key === 'string') return key;
  if (typeof key === 'number' || typeof key === 'boolean' || key === null) return String(key);
  return JSON.stringify(key);
}

/** Reads every top-level form of an EDN text. Throws HistoryParseError with line and column. */
export function readEdnForms(text: string, file?: string): EdnForms {
  return new EdnReader(text, file).readAll();
}
