// The consistency-model lattice and the anomaly-implication graph, after Elle's
// consistency_model.clj (sources: Adya; Adya, Liskov, O'Neil; Bailis et al. HAT; Cerone et al.;
// Daudjee & Salem; Fekete et al.). Edges a -> b in MODEL_EDGES mean "a history satisfying a also
// satisfies b"; edges a -> b in IMPLIED_ANOMALIES mean "seeing a implies b is present too".

type Dag = Readonly<Record<string, readonly string[]>>;

/** Friendly name -> canonical name (Adya's PL-* names where they exist). */
const CANONICAL: Readonly<Record<string, string>> = {
  'consistent-view': 'PL-2+',
  'conflict-serializable': 'PL-3',
  'cursor-stability': 'PL-CS',
  'forward-consistent-view': 'PL-FCV',
  'monotonic-snapshot-read': 'PL-MSR',
  'monotonic-view': 'PL-2L',
  'read-committed': 'PL-2',
  'read-uncommitted': 'PL-1',
  'repeatable-read': 'PL-2.99',
  serializable: 'PL-3',
  'snapshot-isolation': 'PL-SI',
  'strict-serializable': 'PL-SS',
  'strong-serializable': 'PL-SS',
  'update-serializable': 'PL-3U',
  'strong-session-read-uncommitted': 'strong-session-PL-1',
  'strong-session-read-committed': 'strong-session-PL-2',
  'strong-read-uncommitted': 'strong-PL-1',
  'strong-read-committed': 'strong-PL-2',
};

/** Canonical -> friendly; where two friendly names share a canonical one we pick the common one. */
const FRIENDLY: Readonly<Record<string, string>> = (() => {
  const out: Record<string, string> = {};
  for (const [friendly, canonical] of Object.entries(CANONICAL)) out[canonical] ??= friendly;
  out['PL-3'] = 'serializable';
  out['PL-SS'] = 'strict-serializable';
  return out;
})();

export function canonicalModel(m: string): string {
  return CANONICAL[m] ?? m;
}

export function friendlyModel(m: string): string {
  return FRIENDLY[m] ?? m;
}

/** a -> [b...]: a implies b. Friendly names here; canonicalized below. */
const MODEL_EDGES_RAW: Dag = {
  'causal-cerone': ['read-atomic'],
  'consistent-view': ['cursor-stability', 'monotonic-view'],
  'conflict-serializable': ['view-serializable'],
  'cursor-stability': ['read-committed', 'PL-2'],
  'forward-consistent-view': ['consistent-view'],
  'PL-2': ['PL-1'],
  'PL-3': ['repeatable-read', 'update-serializable'],
  'update-serializable': ['forward-consistent-view'],
  'monotonic-atomic-view': ['read-committed'],
  'monotonic-view': ['PL-2'],
  'monotonic-snapshot-read': ['PL-2'],
  'parallel-snapshot-isolation': ['causal-cerone', 'update-atomic'],
  prefix: ['causal-cerone'],
  'read-atomic': ['monotonic-atomic-view'],
  'read-committed': ['read-uncommitted'],
  'repeatable-read': ['cursor-stability', 'monotonic-atomic-view'],
  'update-atomic': ['read-atomic'],
  serializable: ['repeatable-read', 'snapshot-isolation', 'view-serializable'],
  'session-serializable': ['1SR'],
  'snapshot-isolation': [
    'forward-consistent-view', 'monotonic-atomic-view', 'monotonic-snapshot-read',
    'parallel-snapshot-isolation', 'prefix',
  ],
  'strict-serializable': [
    'PL-3', 'serializable', 'linearizable', 'snapshot-isolation', 'strong-snapshot-isolation',
    'strong-session-serializable',
  ],
  'strong-session-PL-1': ['PL-1'],
  'strong-session-PL-2': ['PL-2', 'strong-session-PL-1'],
  'strong-PL-1': ['strong-session-PL-1'],
  'strong-PL-2': ['strong-session-PL-2', 'strong-PL-1'],
  'strong-session-serializable': ['serializable', 'strong-session-snapshot-isolation'],
  'strong-session-snapshot-isolation': ['snapshot-isolation', 'strong-session-PL-2'],
  'strong-serializable': ['session-serializable'],
  'strong-snapshot-isolation': ['strong-session-snapshot-isolation', 'strong-PL-2'],
  linearizable: ['sequential'],
  sequential: ['causal'],
  causal: ['writes-follow-reads', 'PRAM'],
  PRAM: ['monotonic-reads', 'monotonic-writes', 'read-your-writes'],
};

/** Models each model directly forbids (in addition to what weaker implied models forbid). */
const DIRECT_PROSCRIBED_RAW: Dag = {
  'causal-cerone': ['internal', 'G1a'],
  'cursor-stability': ['G1', 'G-cursor', 'lost-update'],
  'monotonic-view': ['G1', 'G-monotonic'],
  'monotonic-snapshot-read': ['G1', 'G-MSR'],
  'consistent-view': ['G1', 'G-single'],
  'forward-consistent-view': ['G1', 'G-SIb'],
  'parallel-snapshot-isolation': ['internal', 'G1a'],
  'PL-3': ['G1', 'G2', 'predicate-read-miss', 'PL-3-cycle-exists'],
  'PL-2': ['G1', 'PL-2-cycle-exists'],
  'PL-1': ['G0', 'duplicate-elements', 'cyclic-versions', 'PL-1-cycle-exists'],
  prefix: ['internal', 'G1a'],
  serializable: ['internal'],
  'snapshot-isolation': ['internal', 'G1', 'G-SI', 'G-nonadjacent', 'PL-SI-cycle-exists'],
  'read-atomic': ['internal', 'G1a', 'future-read'],
  'repeatable-read': ['G1', 'G2-item', 'PL-2.99-cycle-exists', 'lost-update'],
  'update-atomic': ['lost-update'],
  'strict-serializable': ['G1', 'G1c-realtime', 'G2-realtime', 'PL-SS-cycle-exists'],
  'strong-session-PL-1': ['strong-session-PL-1-cycle-exists', 'G0-process'],
  'strong-session-PL-2': ['strong-session-PL-2-cycle-exists', 'G1c-process'],
  'strong-PL-1': ['strong-PL-1-cycle-exists', 'G0-realtime'],
  'strong-PL-2': ['strong-PL-2-cycle-exists', 'G1c-realtime'],
  'strong-session-snapshot-isolation': [
    'internal', 'G1-process', 'G-nonadjacent-process', 'strong-session-snapshot-isolation-cycle-exists',
  ],
  'strong-snapshot-isolation': [
    'internal', 'G1-realtime', 'G-nonadjacent-realtime', 'strong-snapshot-isolation-cycle-exists',
  ],
  'strong-session-serializable': ['G1-process', 'G2-process', 'strong-session-serializable-cycle-exists'],
  'update-serializable': ['G1', 'G-update'],
};

/** Seeing the key anomaly implies every listed anomaly is present as well. */
export const IMPLIED_ANOMALIES: Dag = {
  G0: ['G1c', 'G0-process'],
  'G0-process': ['G1c-process', 'G0-realtime'],
  'G0-realtime': ['G1c-realtime'],
  G1a: ['G1'],
  G1b: ['G1'],
  G1c: ['G1', 'G1c-process'],
  'G1c-process': ['G1c-realtime', 'G1-process'],
  'G1c-realtime': ['G1-realtime'],
  G1: ['G1-process'],
  'G1-process': ['G1-realtime'],
  'G-single-item': ['G-single', 'G-single-item-process', 'G-nonadjacent-item'],
  'G-single-item-process': ['G-single-process', 'G-single-item-realtime', 'G-nonadjacent-item-process'],
  'G-single-item-realtime': ['G-single-realtime', 'G-nonadjacent-item-realtime'],
  'G-single': ['G-nonadjacent', 'GSIb', 'G-single-process'],
  'G-single-process': ['G-nonadjacent-process', 'G-single-realtime'],
  'G-single-realtime': ['G-nonadjacent-realtime'],
  'G-nonadjacent-item': ['G-nonadjacent', 'G2-item', 'G-nonadjacent-item-process'],
  'G-nonadjacent-item-process': ['G-nonadjacent-process', 'G2-item-process', 'G-nonadjacent-item-realtime'],
  'G-nonadjacent-item-realtime': ['G2-item-realtime', 'G-nonadjacent-realtime'],
  'G-nonadjacent': ['G2', 'G-nonadjacent-process'],
  'G-nonadjacent-process': ['G2-process', 'G-nonadjacent-realtime'],
  'G-nonadjacent-realtime': ['G2-realtime'],
  G2: ['G2-process'],
  'G2-item': ['G2', 'G2-item-process'],
  'G2-item-process': ['G2-process', 'G2-item-realtime'],
  'G2-item-realtime': ['G2-realtime'],
  'G2-process': ['G2-realtime'],
  GSIa: ['GSI'],
  GSIb: ['GSI'],
  'incompatible-order': ['G1a'],
  'future-read': ['G1c'],
  'dirty-update': ['G1a'],
  'lost-update': ['write-skew', 'G2-item'],
  'write-skew': ['G2'],
};

/** Extra "worse than" edges used only to order the cycle search (most severe first). */
const SEVERITY: Dag = {
  G0: ['G1c'],
  'G0-process': ['G1c-process'],
  'G0-realtime': ['G1c-realtime'],
  G1c: ['G-single', 'G2-item'],
  'G1c-process': ['G-single-process', 'G2-item-process'],
  'G1c-realtime': ['G-single-realtime', 'G2-item-realtime'],
  G2: ['G0-process'],
  'G2-process': ['G0-realtime'],
};

function canonicalDag(raw: Dag, mapValues: boolean): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, vs] of Object.entries(raw)) {
    const key = canonicalModel(k);
    const list = (out[key] ??= []);
    for (const v of vs) list.push(mapValues ? canonicalModel(v) : v);
  }
  return out;
}

const MODEL_OUT = canonicalDag(MODEL_EDGES_RAW, true);
const MODEL_IN = invert(MODEL_OUT);
const PROSCRIBED_OUT = canonicalDag(DIRECT_PROSCRIBED_RAW, false);
const PROSCRIBED_IN = invert(PROSCRIBED_OUT);
const ANOMALY_OUT: Record<string, string[]> = { ...IMPLIED_ANOMALIES } as Record<string, string[]>;
const ANOMALY_IN = invert(ANOMALY_OUT);

function invert(dag: Record<string, readonly string[]>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, vs] of Object.entries(dag)) for (const v of vs) (out[v] ??= []).push(k);
  return out;
}

/** Every vertex reachable from the seeds (seeds included). The DAGs are tiny; a plain BFS. */
function closure(seeds: Iterable<string>, next: Record<string, readonly string[]>): Set<string> {
  const seen = new Set<string>(seeds);
  const queue = [...seen];
  for (let i = 0; i < queue.length; i++) {
    for (const n of next[queue[i]!] ?? []) {
      if (!seen.has(n)) {
        seen.add(n);
        queue.push(n);
      }
    }
  }
  return seen;
}

const ALL_MODELS: ReadonlySet<string> = new Set([
  ...Object.keys(MODEL_OUT), ...Object.values(MODEL_OUT).flat(),
  ...Object.keys(CANONICAL), ...Object.values(CANONICAL),
]);

export class UnknownConsistencyModelError extends Error {
  constructor(readonly model: string) {
    super(`unknown consistency model ${JSON.stringify(model)}; known: ${[...ALL_MODELS].sort().join(', ')}`);
    this.name = 'UnknownConsistencyModelError';
  }
}

export function validateModels(models: readonly string[]): void {
  for (const m of models) if (!ALL_MODELS.has(m)) throw new UnknownConsistencyModelError(m);
}

/** Anomalies which, if present, mean one of `models` does not hold. */
export function anomaliesProhibitedBy(models: readonly string[]): Set<string> {
  const implied = closure(models.map(canonicalModel), MODEL_OUT);
  const direct: string[] = [];
  for (const m of implied) direct.push(...(PROSCRIBED_OUT[m] ?? []));
  return closure(direct, ANOMALY_IN);
}

export function allImpliedAnomalies(anomalies: Iterable<string>): Set<string> {
  return closure(anomalies, ANOMALY_OUT);
}

/** Canonical models that cannot hold given these anomalies (expanded to stronger models). */
export function impossibleModels(anomalies: Iterable<string>): Set<string> {
  const direct: string[] = [];
  for (const a of allImpliedAnomalies(anomalies)) direct.push(...(PROSCRIBED_IN[a] ?? []));
  return closure(direct, MODEL_IN);
}

/** All canonical models at least as strong as one of these. */
export function modelsImplying(models: Iterable<string>): Set<string> {
  return closure([...models].map(canonicalModel), MODEL_IN);
}

/** Drop each model that implies another model in the set (so the weakest remain). */
function weakestModels(models: Set<string>): Set<string> {
  const out = new Set(models);
  for (const m of models) {
    const others = new Set(out);
    others.delete(m);
    for (const weaker of closure([m], MODEL_OUT)) {
      if (weaker !== m && others.has(weaker)) {
        out.delete(m);
        break;
      }
    }
  }
  return out;
}

/** Elle's boundary: `not` = weakest ruled-out models, `alsoNot` = the other ruled-out ones. */
export function boundary(anomalies: Iterable<string>): { not: string[]; alsoNot: string[] } {
  const impossible = impossibleModels(anomalies);
  const weakest = weakestModels(impossible);
  const friendlySorted = (xs: Iterable<string>): string[] => [...new Set([...xs].map(friendlyModel))].sort();
  return {
    not: friendlySorted(weakest),
    alsoNot: friendlySorted([...impossible].filter((m) => !weakest.has(m))),
  };
}

/** Topological depth of each anomaly in implied+severity graphs: the search order, worst first. */
export const ANOMALY_DEPTH: ReadonlyMap<string, number> = (() => {
  const edges: Record<string, string[]> = {};
  for (const dag of [IMPLIED_ANOMALIES, SEVERITY]) {
    for (const [k, vs] of Object.entries(dag)) (edges[k] ??= []).push(...vs);
  }
  const vertices = new Set([...Object.keys(edges), ...Object.values(edges).flat()]);
  const indegree = new Map<string, number>([...vertices].map((v) => [v, 0]));
  for (const vs of Object.values(edges)) for (const v of vs) indegree.set(v, indegree.get(v)! + 1);
  const depth = new Map<string, number>();
  let frontier = [...vertices].filter((v) => indegree.get(v) === 0);
  for (let d = 0; frontier.length > 0; d++) {
    const next: string[] = [];
    for (const v of frontier) {
      depth.set(v, d);
      for (const w of edges[v] ?? []) {
        indegree.set(w, indegree.get(w)! - 1);
        if (indegree.get(w) === 0) next.push(w);
      }
    }
    frontier = next;
  }
  return depth;
})();
