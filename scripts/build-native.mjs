// Builds every native addon of the project (a folder with a binding.gyp) with node-gyp.
// An addon that needs a tool (`needs`) is built only where that tool is found; elsewhere one
// line says it was skipped. `node scripts/build-native.mjs DIR...` builds only those folders.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const root = join(dirname(new URL(import.meta.url).pathname), "..");
const addons = [
  { dir: "corpus/native", needs: null },
  // The CUDA kernels compiled by g++ against an emulation header: how they are tested on a CPU.
  { dir: "kernels-cuda/emulated", needs: null },
  // The GPU build: nvcc for the .cu files (sm_80, sm_90 and PTX), the CUDA runtime linked statically.
  { dir: "kernels-cuda", needs: "nvcc" },
];
const only = process.argv.slice(2).map((d) => d.replace(/\/+$/, ""));

const nodeGyp = createRequire(import.meta.url).resolve("node-gyp/bin/node-gyp.js");
// Build against the headers of the Node.js that runs us: no download from the internet.
const headers = join(dirname(process.execPath), "..", "include", "node");
const nodedirArgs = existsSync(join(headers, "node.h")) ? [`--nodedir=${join(headers, "..", "..")}`] : [];

for (const { dir, needs } of addons) {
  if (only.length > 0 && !only.includes(dir)) continue;
  const full = join(root, dir);
  if (!existsSync(join(full, "binding.gyp"))) continue;
  if (needs && spawnSync("sh", ["-c", `command -v ${needs}`]).status !== 0) {
    console.log(`build-native: skipping ${dir} (${needs} not found on this machine)`);
    continue;
  }
  console.log(`build-native: building ${dir}`);
  execFileSync(process.execPath, [nodeGyp, "rebuild", "--silent", ...nodedirArgs], { cwd: full, stdio: "inherit" });
}
