// kvcheck: check a recorded history for linearizability or Elle-style transactional anomalies.
// Exit codes: 0 valid, 1 invalid, 2 unknown (timed out), 3 bad input or usage.

import { readFileSync, writeFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { HistoryParseError } from './history.js';
import { ModelInputError } from './lin/types.js';
import { LIN_MODEL_NAMES } from './models/index.js';
import { readEdnForms } from './parse/edn-reader.js';
import { FORMATS, parseHistory, type HistoryFormat } from './parse/index.js';
import { ELLE_MODEL_NAMES, ModelInferenceError, SESSION_MODEL_NAME, runCheck, type CheckModelName, type CheckReport } from './run.js';

export const EXIT_VALID = 0;
export const EXIT_INVALID = 1;
export const EXIT_UNKNOWN = 2;
export const EXIT_BAD_INPUT = 3;

interface CliOptions {
  model?: CheckModelName;
  format?: HistoryFormat;
  consistencyModels?: string;
  initial?: string;
  json?: boolean;
  html?: string;
  timeoutS?: string;
}

/** Output sinks, injectable for tests. */
export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

class UsageError extends Error {}

/** --initial is EDN (0, nil, "abc", {:x 0 :y 0}); anything that is not one EDN form is a string. */
function parseInitial(text: string): unknown {
  try {
    const { forms } = readEdnForms(text);
    return forms.length === 1 ? forms[0] : text;
  } catch {
    return text;
  }
}

function parseTimeoutMs(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError(`--timeout-s must be a positive number, got '${text}'`);
  return seconds * 1000;
}

function buildProgram(): Command {
  return new Command('kvcheck')
    .description('Check a history for linearizability (WGL/Porcupine) or transactional anomalies (Elle).')
    .argument('<file>', 'history file (EDN, Elle-cli JSON, Porcupine log/kv, or our JSON lines)')
    .addOption(new Option('--model <model>', 'model (inferred from the ops when absent)').choices([...LIN_MODEL_NAMES, ...ELLE_MODEL_NAMES, SESSION_MODEL_NAME]))
    .addOption(new Option('--format <format>', 'input format (inferred from the name/content when absent)').choices([...FORMATS]))
    .option('--consistency-models <models>', 'Elle: comma-separated consistency models to check (default strict-serializable)')
    .option('--initial <value>', 'initial state as EDN, e.g. 0, nil, "x", {:x 0 :y 0}')
    .option('--json', 'print one JSON object')
    .option('--html <out>', 'write an HTML timeline of the failing partition (linearizability)')
    .option('--timeout-s <seconds>', 'give up with "unknown" after this long')
    .exitOverride()
    .configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
}

function exitCodeOf(report: CheckReport): number {
  return report.valid === true ? EXIT_VALID : report.valid === false ? EXIT_INVALID : EXIT_UNKNOWN;
}

function printReport(report: CheckReport, file: string, options: CliOptions, io: CliIo): void {
  if (options.json) {
    const { lin: _lin, timelineHtml: _html, ...summary } = report;
    io.out(JSON.stringify({ ...summary, file, elapsedMs: Math.round(report.elapsedMs * 10) / 10 }));
    return;
  }
  const verdict = report.valid === true ? 'VALID' : report.valid === false ? 'INVALID' : 'UNKNOWN';
  io.out(`${file}: ${verdict} (${report.model}, ${report.opCount} ops, ${report.elapsedMs.toFixed(0)} ms)`);
  if (report.anomalyTypes.length) io.out(`anomalies: ${report.anomalyTypes.join(', ')}`);
  if (report.not.length) io.out(`not: ${report.not.join(', ')}${report.alsoNot.length ? `; also not: ${report.alsoNot.join(', ')}` : ''}`);
  for (const line of report.explanations) io.out(line);
}

function check(file: string, options: CliOptions, io: CliIo): number {
  const text = readFileSync(file, 'utf8');
  const parseOptions: { file: string; format?: HistoryFormat } = { file };
  if (options.format) parseOptions.format = options.format;
  const { history, format } = parseHistory(text, parseOptions);
  const timeoutMs = parseTimeoutMs(options.timeoutS);
  const report = runCheck({
    history,
    format,
    title: file,
    ...(options.model ? { model: options.model } : {}),
    ...(options.initial !== undefined ? { initial: parseInitial(options.initial) } : {}),
    ...(options.consistencyModels ? { consistencyModels: options.consistencyModels.split(',').map((m) => m.trim()).filter(Boolean) } : {}),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
  });
  if (options.html && report.timelineHtml) writeFileSync(options.html, report.timelineHtml);
  printReport(report, file, options, io);
  return exitCodeOf(report);
}

function describeError(error: unknown, file: string | undefined): string {
  if (error instanceof HistoryParseError) return error.message;
  if (error instanceof ModelInputError || error instanceof ModelInferenceError || error instanceof UsageError || error instanceof TypeError) {
    return `${file ?? '<input>'}: ${error.message}`;
  }
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'EISDIR' || code === 'EACCES') return `${file}: cannot read: ${code}`;
  throw error;
}

/** Runs kvcheck with `argv` (without node and script); returns the exit code. */
export function runCli(argv: string[], io: CliIo): number {
  const program = buildProgram();
  let file: string | undefined;
  try {
    program.parse(argv, { from: 'user' });
    file = program.args[0]!;
    return check(file, program.opts<CliOptions>(), io);
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.help') {
        io.out(program.helpInformation());
        return EXIT_VALID;
      }
      io.err(`kvcheck: ${error.message.replace(/^error: /, '')}\n${program.helpInformation()}`);
      return EXIT_BAD_INPUT;
    }
    io.err(`kvcheck: ${describeError(error, file)}`);
    return EXIT_BAD_INPUT;
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) {
  process.exitCode = runCli(process.argv.slice(2), { out: (t) => console.log(t), err: (t) => console.error(t) });
}
