// End to end: `aze-run dashboard` in a real 80×24 terminal (a tmux pane) attached to a live
// CPU cluster; pressing `+` brings a new compute actor into the table and into
// `cluster status --json`, and `q` detaches with the run still up.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { cliEntry } from "../../runtime/spawn.js";
import { removeDir, runCli, tempDir, waitFor } from "../helpers/cluster.js";

const hasTmux = spawnSync("tmux", ["-V"]).status === 0;
const built = existsSync(cliEntry);
if (!hasTmux) console.log("skipping tui-dashboard-scales-a-live-cluster: tmux is not installed");
if (!built) console.log(`skipping tui-dashboard-scales-a-live-cluster: ${cliEntry} is missing, run \`npm run build\``);

const RUN = "tuilive";
const socket = `aze-tui-live-${process.pid}`;
const tmux = (...args: string[]) => execFileSync("tmux", ["-L", socket, ...args], { encoding: "utf8" });
const screen = () => tmux("capture-pane", "-p", "-t", "dash");

interface StatusJson {
  actors: { kind: string; id: string }[];
}

describe.skipIf(!hasTmux || !built)("dashboard on a live cluster", () => {
  const cwd = tempDir("aze-tui-live-");
  afterAll(async () => {
    spawnSync("tmux", ["-L", socket, "kill-server"]);
    await runCli(["cluster", "down", "--run", RUN], cwd);
    removeDir(cwd);
  });

  it("adds a compute actor on + and leaves the run up on q", async () => {
    const up = await runCli(["cluster", "up", "--empty", "--detach", "--compute", "1", "--run", RUN], cwd);
    expect(up.stderr).toBe("");
    expect(up.code).toBe(0);

    // Ink draws only the last frame where CI is set (as it is in CI): the dashboard must not see it.
    tmux(
      "new-session",
      "-d",
      "-x",
      "80",
      "-y",
      "24",
      "-s",
      "dash",
      "-c",
      cwd,
      `env -u CI ${process.execPath} ${cliEntry} dashboard --run ${RUN}; echo "exit=$?"; sleep 60`,
    );
    await waitFor("the actors table", () => /compute +compute-0 /.test(screen()) || undefined, 30_000);
    expect(screen()).not.toMatch(/compute +compute-1 /);

    tmux("send-keys", "-t", "dash", "+");
    await waitFor("compute-1 in the table", () => /compute +compute-1 +\S+ .*(starting|ready)/.test(screen()) || undefined, 30_000);
    expect(screen()).toContain("compute (2)");
    const status = JSON.parse((await runCli(["cluster", "status", "--run", RUN, "--json"], cwd)).stdout) as StatusJson;
    expect(
      status.actors
        .filter((a) => a.kind === "compute")
        .map((a) => a.id)
        .sort(),
    ).toEqual(["compute-0", "compute-1"]);

    tmux("send-keys", "-t", "dash", "q");
    await waitFor("the dashboard to leave", () => screen().includes("exit=0") || undefined, 15_000);
    const after = await runCli(["cluster", "status", "--run", RUN, "--json"], cwd);
    expect(after.code).toBe(0);
    expect((JSON.parse(after.stdout) as StatusJson).actors.filter((a) => a.kind === "compute")).toHaveLength(2);
  });
});
