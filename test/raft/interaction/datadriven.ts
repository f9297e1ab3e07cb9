// A small reader/writer for etcd-style data-driven test files (cockroachdb/datadriven format):
//
//   # comments and blank lines are kept as they are
//   command arg1 key=value key=(1,2,3)
//   ----
//   expected output (no blank lines inside)
//
// Output that is empty is written as "ok".

export interface TestCase {
  /** Comment and blank lines before the command, kept verbatim on rewrite. */
  preamble: string[];
  /** Line number (1-based) of the command, for error messages. */
  line: number;
  command: string;
  expected: string;
}

export interface ParsedFile {
  cases: TestCase[];
  /** Trailing comment/blank lines after the last case. */
  trailer: string[];
}

export function parseDataDriven(text: string, fileName: string): ParsedFile {
  const lines = text.split('\n');
  const cases: TestCase[] = [];
  let preamble: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.trim() === '' || line.startsWith('#')) {
      preamble.push(line);
      i++;
      continue;
    }
    const commandLine = i + 1;
    const command = line.trim();
    i++;
    if (lines[i] !== '----') throw new Error(`${fileName}:${commandLine}: expected ---- after "${command}"`);
    i++;
    const out: string[] = [];
    while (i < lines.length && lines[i]!.trim() !== '') {
      out.push(lines[i]!);
      i++;
    }
    cases.push({ preamble, line: commandLine, command, expected: out.join('\n') });
    preamble = [];
  }
  // Drop the final empty string produced by a trailing newline.
  while (preamble.length > 0 && preamble[preamble.length - 1] === '') preamble.pop();
  return { cases, trailer: preamble };
}

export function formatDataDriven(file: ParsedFile, outputs: string[]): string {
  const parts: string[] = [];
  file.cases.forEach((c, idx) => {
    parts.push(...c.preamble);
    parts.push(c.command, '----', outputs[idx] === '' ? 'ok' : outputs[idx]!);
  });
  parts.push(...file.trailer);
  return parts.join('\n') + '\n';
}

export interface CommandArgs {
  name: string;
  /** Positional arguments, in order. */
  pos: string[];
  /** key=value arguments; a value in parentheses becomes a comma/space separated list. */
  kv: Map<string, string[]>;
}

export function parseCommand(command: string): CommandArgs {
  const tokens: string[] = [];
  let cur = '';
  let depth = 0;
  for (const ch of command) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (/\s/.test(ch) && depth === 0) {
      if (cur !== '') tokens.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  if (cur !== '') tokens.push(cur);
  const [name, ...rest] = tokens;
  const pos: string[] = [];
  const kv = new Map<string, string[]>();
  for (const t of rest) {
    const eq = t.indexOf('=');
    if (eq < 0) {
      pos.push(t);
      continue;
    }
    const key = t.slice(0, eq);
    let val = t.slice(eq + 1);
    if (val.startsWith('(') && val.endsWith(')')) {
      val = val.slice(1, -1);
      kv.set(key, val.split(/[\s,]+/).filter((s) => s !== ''));
    } else {
      kv.set(key, [val]);
    }
  }
  return { name: name ?? '', pos, kv };
}
