#!/usr/bin/env node
// Package bin shim for `kvcheck`: registers tsx's ESM loader so the TypeScript CLI runs without a
// build step, then hands over to src/check/cli.ts.
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../check/cli.ts');
process.exitCode = runCli(process.argv.slice(2), {
  out: (text) => console.log(text),
  err: (text) => console.error(text),
});
