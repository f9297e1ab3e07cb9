// Every input format, and inference of the format from a file's name and content.

import { HistoryParseError, type History } from '../history.js';
import { parseEdnHistory } from './edn.js';
import { parseElleJson } from './elle-json.js';
import { parseJsonl } from './jsonl.js';
import { parsePorcupineKv } from './porcupine-kv.js';
import { parsePorcupineLog } from './porcupine-log.js';

export const FORMATS = ['edn', 'elle-json', 'porcupine-log', 'porcupine-kv', 'jsonl'] as const;
export type HistoryFormat = (typeof FORMATS)[number];

export function isHistoryFormat(name: string): name is HistoryFormat {
  return (FORMATS as readonly string[]).includes(name);
}

/** The first characters of content, skipping whitespace and `;` comments. */
function contentStart(text: string): string {
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === ';') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (/\s|,/.test(ch)) {
      i++;
    } else {
      break;
    }
  }
  return text.slice(i, i + 200);
}

function sniffFormat(text: string): HistoryFormat | undefined {
  const start = contentStart(text);
  if (start.startsWith('INFO')) return 'porcupine-log';
  if (/^\[\s*(\{\s*"|\])/.test(start)) return 'elle-json';
  if (/^\{\s*"/.test(start)) return 'jsonl';
  if (/^\{:process \d+, :type :\w+, :f :(get|put|append), :key /.test(start)) return 'porcupine-kv';
  if (/^[[({#]/.test(start)) return 'edn';
  return undefined;
}

/** Infers a format from the extension, then from the content. Undefined if neither is clear. */
export function inferFormat(file: string | undefined, text: string): HistoryFormat | undefined {
  const ext = file?.toLowerCase().match(/\.([a-z]+)$/)?.[1];
  switch (ext) {
    case 'edn':
      return 'edn';
    case 'log':
      return 'porcupine-log';
    case 'jsonl':
    case 'ndjson':
      return 'jsonl';
    case 'json':
      return 'elle-json';
    default:
      return sniffFormat(text);
  }
}

export interface ParsedHistory {
  history: History;
  format: HistoryFormat;
}

/** Parses `text` in `format` (inferred when absent). Throws HistoryParseError on bad input. */
export function parseHistory(text: string, options: { file?: string; format?: HistoryFormat } = {}): ParsedHistory {
  const { file } = options;
  const format = options.format ?? inferFormat(file, text);
  if (format === undefined) {
    throw new HistoryParseError(`cannot tell the format; pass --format (${FORMATS.join(', ')})`, file, 1, 1);
  }
  return { history: parseIn(format, text, file), format };
}

function parseIn(format: HistoryFormat, text: string, file: string | undefined): History {
  switch (format) {
    case 'edn':
      return parseEdnHistory(text, file);
    case 'elle-json':
      return parseElleJson(text, file);
    case 'porcupine-log':
      return parsePorcupineLog(text, file);
    case 'porcupine-kv':
      return parsePorcupineKv(text, file);
    case 'jsonl':
      return parseJsonl(text, file);
  }
}
