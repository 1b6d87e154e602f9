import { defineConfig } from "vitest/config";

// Integration tests start real nats-servers and real child processes; on a 2-core
// machine running too many files at once only makes every one of them slower.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "test/**/*.test.tsx"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    maxWorkers: 2,
    reporters: ["default"],
  },
});
