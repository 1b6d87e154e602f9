// What the benchmarks share: the median of repeated timings, and the same figure measured by
// an independent Python implementation (numpy, PyTorch) in the same run, with the BLAS
// library that peer really used, read from the libraries mapped into its process: a ratio
// against the reference BLAS would say more about that library than about us.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export type BlasKind = "OpenBLAS" | "MKL" | "reference BLAS" | "none found";

export interface PeerFigure {
  value: number;
  /** Which BLAS the peer's process had mapped, and the library files that say so. */
  blas: BlasKind;
  libraries: string[];
}

/** Appended to every peer script: prints the BLAS-like libraries this Python process has mapped. */
const mappedBlas = `
import re as _re
print("BLAS", *sorted({_l.split()[-1] for _l in open("/proc/self/maps") if len(_l.split()) > 5 and _re.search(r"blas|mkl", _l.split()[-1], _re.I)}))`;

/** Names the BLAS from the mapped files (real paths: Debian's alternatives are resolved by then). */
export function blasOf(libraries: string[]): BlasKind {
  if (libraries.some((l) => /openblas/i.test(l))) return "OpenBLAS";
  if (libraries.some((l) => /mkl/i.test(l))) return "MKL";
  if (libraries.some((l) => /libblas\.so/.test(l))) return "reference BLAS";
  return "none found";
}

/**
 * The number `script` prints under the first of `pythons` that runs it, on `threads` threads
 * (1 by default), with the BLAS it used; undefined when none can run it. `env` adds or, with
 * undefined values, removes environment variables (the machine's OPENBLAS_* overrides).
 */
export function pythonFigure(
  script: string,
  pythons: string[],
  opts: { threads?: number; env?: Record<string, string | undefined> } = {},
): PeerFigure | undefined {
  const threads = String(opts.threads ?? 1);
  const env: Record<string, string | undefined> = {
    ...process.env,
    OPENBLAS_NUM_THREADS: threads,
    OMP_NUM_THREADS: threads,
    MKL_NUM_THREADS: threads,
    ...opts.env,
  };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  for (const python of pythons) {
    const r = spawnSync(python, ["-c", script + mappedBlas], { encoding: "utf8", env });
    if (r.status !== 0) continue;
    const lines = r.stdout.trim().split("\n");
    const libraries = (lines.find((l) => l.startsWith("BLAS")) ?? "BLAS").split(" ").slice(1);
    return { value: Number(lines[0]), blas: blasOf(libraries), libraries };
  }
  return undefined;
}

/** "ratio 0.42", or why there is none: a peer on the reference BLAS is no peer. */
export function ratioAgainst(ours: number, peer: PeerFigure | undefined, install: string): string {
  if (!peer) return `no peer: ${install}`;
  if (peer.blas === "reference BLAS")
    return `no ratio: the peer runs on the reference BLAS (${peer.libraries.join(", ")}), not an optimised one; install libopenblas0-pthread`;
  return `ratio ${(ours / peer.value).toFixed(2)}`;
}

/**
 * The machine's variables that steer OpenBLAS's kernel choice. Where they are set, numpy is
 * measured both with them and without, in the same run.
 */
export function openblasOverrides(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(process.env).filter(([k, v]) => (k === "OPENBLAS_CORETYPE" || k === "OPENBLAS_L2_SIZE") && v !== undefined),
  ) as Record<string, string>;
}

/**
 * The ceiling of WebAssembly SIMD on one core: 128-bit vectors of 4 f32, a fused multiply-add
 * (2 FLOP) per lane, two FMA units per core (x86 since Haswell), at the core's clock.
 */
export function wasmCeilingGflops(): { gflops: number; ghz: number } | undefined {
  try {
    const mhz = /cpu MHz\s*:\s*([\d.]+)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1];
    if (!mhz) return undefined;
    const ghz = Number(mhz) / 1000;
    return { gflops: 4 * 2 * 2 * ghz, ghz };
  } catch {
    return undefined;
  }
}
