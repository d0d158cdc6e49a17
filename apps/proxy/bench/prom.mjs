// Reading Prometheus text exposition in the proxy benches (run.mjs, loopback.mjs).

/** Cumulative `le` buckets of a histogram (summed over the workers' texts): [[le, count]...]. */
export function buckets(texts, name) {
  const sums = new Map();
  for (const t of texts) {
    for (const l of t.split('\n')) {
      if (!l.startsWith(`${name}_bucket{`)) continue;
      const le = /le="([^"]+)"/.exec(l)?.[1];
      if (le === undefined) continue;
      const v = Number(l.slice(l.lastIndexOf(' ') + 1));
      sums.set(le, (sums.get(le) ?? 0) + v);
    }
  }
  return [...sums]
    .map(([le, v]) => [le === '+Inf' ? Infinity : Number(le), v])
    .sort((a, b) => a[0] - b[0]);
}

/**
 * Quantile `q` of the observations between two bucket readings, interpolated linearly inside
 * its bucket (as Prometheus' histogram_quantile does); undefined without observations.
 */
export function bucketQuantile(before, after, q) {
  const at = new Map(before);
  const delta = after.map(([le, v]) => [le, v - (at.get(le) ?? 0)]);
  const total = delta.length ? delta[delta.length - 1][1] : 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of delta) {
    if (count >= rank) {
      if (le === Infinity) return prevLe;
      return prevLe + ((le - prevLe) * (rank - prevCount)) / Math.max(1, count - prevCount);
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

/** The value of the first sample line named `name` (with its labels, if given), or undefined. */
export function metricValue(text, name) {
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : undefined;
}
