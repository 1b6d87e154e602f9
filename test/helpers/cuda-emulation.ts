// The CUDA kernels on the CPU, for tests: the addon compiled by g++ against the emulation
// header (kernels-cuda/src/emulate.h). `npm run build` builds it; a clean checkout that only
// runs the tests builds it here on first use.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type CudaKernels, createCudaKernels, cudaAddonPath, loadCudaAddon } from "../../kernels-cuda/index.js";
import { packageRoot } from "../../runtime/spawn.js";

/** Whether this machine has a C++ compiler to build the emulation with (tests skip without one). */
export const hasCompiler = ["c++", "g++"].some((c) => spawnSync("sh", ["-c", `command -v ${c}`]).status === 0);

/** The CUDA backend over the emulated addon, built first if it is not. */
export function emulatedCudaKernels(): CudaKernels {
  if (!existsSync(cudaAddonPath("emulated")))
    execFileSync(process.execPath, [join(packageRoot, "scripts", "build-native.mjs"), "kernels-cuda/emulated"], {
      cwd: packageRoot,
      stdio: "inherit",
      timeout: 600_000,
    });
  return createCudaKernels(loadCudaAddon("emulated"));
}
