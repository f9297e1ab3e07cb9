#!/usr/bin/env node
// Package bin shim for `kvd`: registers tsx's ESM loader so the TypeScript node runs without a
// build step, then hands over to src/cli/kvd.ts.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./kvd.ts');
await main();
