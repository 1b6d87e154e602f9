// Under a real terminal (a tmux pane of 80×24), runDashboard draws the whole dashboard
// without ever clearing the screen, `+` sends a scale and the new compute actor appears,
// and `q` detaches with the run still going.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const repo = resolve(import.meta.dirname, "../..");
const hasTmux = spawnSync("tmux", ["-V"]).status === 0;
if (!hasTmux) console.log("skipping tui-runs-in-a-terminal: tmux is not installed");

const dir = mkdtempSync(join(tmpdir(), "aze-tui-pty-"));
const socket = `aze-tui-${process.pid}`;
const tmux = (...args: string[]) => execFileSync("tmux", ["-L", socket, ...args], { encoding: "utf8" });
afterAll(() => {
  spawnSync("tmux", ["-L", socket, "kill-server"]);
  rmSync(dir, { recursive: true, force: true });
});

// The child plays the sample run one step per 40 ms; a scale control answers with a
// snapshot holding the asked number of compute actors, as the coordinator does.
const child = `
import { runDashboard } from ${JSON.stringify(join(repo, "tui/dashboard.js"))};
import { MemorySource } from ${JSON.stringify(join(repo, "tui/memory-source.js"))};
import { sampleRun, sampleTimeAt } from ${JSON.stringify(join(repo, "tui/sample-run.js"))};
const all = sampleRun(300).filter((u) => u.kind !== "end");
let step = 0;
let actors = [];
const source = new MemorySource((c, s) => {
  if (c.type !== "scale") return;
  const compute = Array.from({ length: c.compute }, (_, i) => ({
    kind: "compute", id: "compute-" + i, pid: 5000 + i, host: "laptop", backend: "wasm",
    state: "working", lastHeartbeat: sampleTimeAt(step),
  }));
  s.push({ kind: "actors", actors: [...actors.filter((a) => a.kind !== "compute"), ...compute] });
});
let i = 0;
const timer = setInterval(() => {
  while (i < all.length) {
    const u = all[i++];
    if (u.kind === "actors") actors = u.actors;
    source.push(u);
    if (u.kind === "step") { step = u.metrics.step; break; }
  }
}, 40);
const how = await runDashboard(source, { now: () => sampleTimeAt(step) + 300 });
clearInterval(timer);
console.log("exit:" + how + " controls:" + JSON.stringify(source.controls));
`;

async function until(check: () => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; screen:\n${screen()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
const screen = () => tmux("capture-pane", "-p", "-t", "dash");

describe.skipIf(!hasTmux)("dashboard in a terminal", () => {
  it("draws at 80×24 without clearing, scales on +, detaches on q", async () => {
    writeFileSync(join(dir, "package.json"), '{"type":"module"}');
    writeFileSync(join(dir, "child.mts"), child);
    const raw = join(dir, "raw.log");
    const tsx = join(repo, "node_modules/.bin/tsx");
    // Ink draws only the last frame where CI is set (as it is in CI): the child must not see it.
    tmux("new-session", "-d", "-x", "80", "-y", "24", "-s", "dash", `env -u CI ${tsx} ${join(dir, "child.mts")}; sleep 60`);
    tmux("pipe-pane", "-o", "-t", "dash", `cat > ${raw}`);

    await until(() => /step [1-9]\d*\/300/.test(screen()), "the first steps");
    await until(() => screen().includes("compute-1"), "the actors table");
    const lines = screen().trimEnd().split("\n");
    expect(lines.length).toBeLessThanOrEqual(23);
    expect(lines.at(-1)).toContain("q  detach");
    expect(screen()).toMatch(/^kind +id +host +bknd +state/m);

    tmux("send-keys", "-t", "dash", "+");
    await until(() => /compute +compute-2 +laptop +wasm +working/.test(screen()), "compute-2 in the table");
    tmux("send-keys", "-t", "dash", "q");
    await until(() => screen().includes("exit:"), "the dashboard to leave");
    expect(screen()).toContain('exit:detach controls:[{"type":"scale","compute":3}]');
    // Ink clears the terminal (ESC[2J) only when a frame is as tall as the screen: that
    // is the flicker this layout avoids.
    expect(readFileSync(raw, "latin1")).not.toContain("\u001b[2J");
  });
});
