// Prints the CUDA toolkit root for binding.gyp: the folder of the `nvcc` that is on PATH
// (asked from nvcc itself, since /usr/local/bin/nvcc may be a wrapper script), else
// CUDA_HOME, else /usr/local/cuda.
const { spawnSync } = require("node:child_process");
const { existsSync } = require("node:fs");
const { dirname, join } = require("node:path");

// `nvcc --dryrun -v` prints the variables it runs with, among them _HERE_=<root>/bin.
const trace = spawnSync("nvcc", ["-v", "--dryrun", "-c", "-x", "cu", "/dev/null", "-o", "/dev/null"], { encoding: "utf8" });
const here = /_HERE_=(\S+)/.exec(`${trace.stdout ?? ""}${trace.stderr ?? ""}`)?.[1];
const candidates = [here && dirname(here), process.env.CUDA_HOME, process.env.CUDA_PATH, "/usr/local/cuda"].filter(Boolean);
const root = candidates.find((c) => existsSync(join(c, "include", "cuda_runtime.h")));
if (!root) {
  console.error(`cuda-root: no CUDA toolkit found (looked in ${candidates.join(", ")})`);
  process.exit(1);
}
process.stdout.write(root);
