// The range end selecting every key with a given prefix (etcd semantics).

/** Smallest key greater than every key starting with `prefix`; "\0" (= to the end) when none exists. */
export function prefixEndOf(prefix: Uint8Array): Uint8Array {
  const end = Uint8Array.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Uint8Array.of(0);
}
