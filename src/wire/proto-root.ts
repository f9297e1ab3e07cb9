// Loads our .proto files with protobufjs reflection. Reflection compiles the same
// specialised encode/decode functions at load time that pbjs would emit as static code
// (measured equal within noise on a 100-entry batch), so we skip a codegen step and a
// generated-file diff on every proto change. Integers decode as JS numbers: Long support
// is switched off (uint64 fields hold ids, terms, indexes and revisions, all < 2^53).

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/** How many directories up from this file we look for `proto/` (src/x, dist/src/x). */
const PROTO_DIR_SEARCH_DEPTH = 5;

let numbersConfigured = false;

/** Makes 64-bit integer fields decode as JS numbers instead of Long objects (process-wide). */
export function useNumbersForLongs(): void {
  if (numbersConfigured) return;
  (protobuf.util as { Long: unknown }).Long = null;
  protobuf.configure();
  numbersConfigured = true;
}

/** The repository's `proto/` directory, found by walking up from this module. */
export function findProtoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < PROTO_DIR_SEARCH_DEPTH; i++) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(candidate, 'raft', 'v1', 'raft.proto'))) return candidate;
    dir = dirname(dir);
  }
  throw new Error(`proto/ directory not found above ${fileURLToPath(import.meta.url)}`);
}

/** Loads the given files (paths relative to proto/) into one Root; imports resolve against proto/. */
export function loadProtoRoot(files: string[]): protobuf.Root {
  useNumbersForLongs();
  const protoDir = findProtoDir();
  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string): string => (target.startsWith('/') ? target : join(protoDir, target));
  root.loadSync(files, { keepCase: false });
  root.resolveAll();
  return root;
}
