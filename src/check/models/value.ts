// Value helpers shared by the models: structural equality, a 32-bit hash consistent with it,
// and a short printable form.

export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function hashNumber(n: number): number {
  if (Number.isInteger(n) && Math.abs(n) <= 0x7fffffff) return Math.imul(n ^ 0x5bd1e995, 0x9e3779b1) >>> 0;
  return hashString(String(n));
}

/** Canonical text of a value: object keys sorted, so equal values print equally. */
export function canonical(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? String(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
}

export function hashValue(value: unknown): number {
  if (value === null) return 0x2545f491;
  if (typeof value === 'number') return hashNumber(value);
  if (typeof value === 'string') return hashString(value);
  if (typeof value === 'boolean') return value ? 0x3c6ef372 : 0x1b873593;
  return hashString(canonical(value));
}

export function valueEquals(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  return canonical(a) === canonical(b);
}

/** EDN-like short form for descriptions: nil for null. */
export function show(value: unknown): string {
  if (value === null || value === undefined) return 'nil';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value !== 'object') return String(value);
  return canonical(value);
}
