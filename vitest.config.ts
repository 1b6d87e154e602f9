import { spawnSync } from "node:child_process";
import { defineConfig } from "vitest/config";

// Node 20 runs relaxed SIMD only behind a flag; give it to the test workers where this
// Node knows it, so the relaxed-SIMD kernels are tested too.
const relaxedFlag = "--experimental-wasm-relaxed-simd";
const nodeKnowsFlag = spawnSync(process.execPath, [relaxedFlag, "-e", "0"]).status === 0;

// Integration tests start real nats-servers and real child processes; on a 2-core
// machine running too many files at once only makes every one of them slower.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "test/**/*.test.tsx"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    maxWorkers: 2,
    execArgv: nodeKnowsFlag ? [relaxedFlag] : [],
    reporters: ["default"],
  },
});
