// The run panel: which run this is, how far it got, and how long it has left.
//
// Owns: the two header lines (run, config, model; step, progress, elapsed, ETA, lr, status).
// Never: computes anything the reducer already keeps; reads the clock only through `now`.
import { Box, Text } from "ink";
import { formatBar, formatCount, formatDuration, formatLr } from "../runtime/format.js";
import { etaMs, type DashboardState } from "./state.js";
import type { RunInfo } from "../actors/protocol.js";

/** Which run this is: the header says it, and so does the plain log's first line. */
export function runTitle(run: RunInfo): string {
  return `${run.run} · ${run.configName} · ${run.preset} ${run.architecture} ${formatCount(run.parameters)} params`;
}

function runStatus(state: DashboardState): { label: string; color: string } {
  if (state.ended) return { label: state.ended, color: "gray" };
  if (!state.run) return { label: "waiting for the run…", color: "yellow" };
  if (state.paused) return { label: "paused", color: "yellow" };
  if (state.computeTarget !== undefined) return { label: `scaling to ${state.computeTarget}`, color: "cyan" };
  return { label: "running", color: "green" };
}

/** `now` (ms epoch) is for the elapsed time. */
export function RunPanel({ state, now, width }: { state: DashboardState; now: number; width: number }) {
  const { run, last } = state;
  const status = runStatus(state);
  const title = run ? `aze-run ${runTitle(run)}` : "aze-run";
  const step = last?.step ?? 0;
  const total = run?.totalSteps ?? 0;
  const share = total > 0 ? step / total : 0;
  const figures = [
    `elapsed ${run ? formatDuration(now - run.startedAt) : "–"}`,
    `ETA ${formatDuration(etaMs(state) ?? Number.NaN)}`,
    `lr ${last ? formatLr(last.lr) : "–"}`,
  ].join("  ");
  const stepText = `step ${step}/${total || "?"}`;
  // The bar takes what the text leaves, but never less than 10 cells or more than 30.
  const barWidth = Math.max(10, Math.min(30, width - stepText.length - figures.length - 10));
  const titleWidth = Math.max(1, width - status.label.length - 3);
  return (
    <Box flexDirection="column" width={width}>
      <Box justifyContent="space-between">
        <Text bold wrap="truncate-end">
          {title.length > titleWidth ? `${title.slice(0, titleWidth - 1)}…` : title}
        </Text>
        <Text color={status.color}>● {status.label}</Text>
      </Box>
      <Text wrap="truncate-end">
        {stepText} <Text color="green">{formatBar(share, barWidth)}</Text> {(share * 100).toFixed(1).padStart(5)}% {figures}
      </Text>
    </Box>
  );
}
