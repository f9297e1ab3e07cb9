#!/usr/bin/env node
// Package bin shim for `kvctl`: registers tsx's ESM loader so the TypeScript CLI runs without a
// build step, then hands over to src/cli/kvctl.ts.
import { register } from 'tsx/esm/api';

register();
const { runKvctl } = await import('./kvctl.ts');
process.exitCode = await runKvctl(process.argv.slice(2));
