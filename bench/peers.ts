// What the benchmarks share: the median of repeated timings, and the same figure measured by
// an independent Python implementation (numpy, PyTorch) on one thread, in the same run.
import { spawnSync } from "node:child_process";

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The number `script` prints under the first of `pythons` that runs it; undefined when none can. */
export function pythonFigure(script: string, pythons: string[]): number | undefined {
  const env = { ...process.env, OPENBLAS_NUM_THREADS: "1", OMP_NUM_THREADS: "1", MKL_NUM_THREADS: "1" };
  for (const python of pythons) {
    const r = spawnSync(python, ["-c", script], { encoding: "utf8", env });
    if (r.status === 0) return Number(r.stdout.trim());
  }
  return undefined;
}
