// The communication line: bytes per second through NATS and where the step's time went.
//
// Owns: the split of a step into compute, communication and waiting, drawn as one bar.
// Never: measures anything; it shows what the coordinator reported for the last step.
import { Text } from "ink";
import { formatBytes, formatPercent } from "../runtime/format.js";
import type { DashboardState } from "./state.js";

/** Cells of the bar for compute, comm and wait, in proportion to their times; they sum to `width`. */
export function timeSplit(computeMs: number, commMs: number, waitMs: number, width: number): [number, number, number] {
  const total = computeMs + commMs + waitMs;
  if (!(total > 0)) return [0, 0, 0];
  // Largest remainder: floor each share, then hand the cells left to the largest fractions,
  // so the three always fill the width exactly (rounding each could overshoot it).
  const exact = [computeMs, commMs, waitMs].map((ms) => (ms / total) * width);
  const cells = exact.map(Math.floor) as [number, number, number];
  const order = [0, 1, 2].sort((a, b) => exact[b]! - cells[b]! - (exact[a]! - cells[a]!) || a - b);
  for (let left = width - cells[0] - cells[1] - cells[2], i = 0; left > 0; left--, i++) cells[order[i % 3]!]!++;
  return cells;
}

export function CommPanel({ state, width }: { state: DashboardState; width: number }) {
  const m = state.last;
  if (!m) {
    return (
      <Text wrap="truncate-end">
        <Text bold>comm </Text>–
      </Text>
    );
  }
  const bytesPerSec = m.stepMs > 0 ? (m.bytesSent * 1000) / m.stepMs : 0;
  const text = `${formatBytes(bytesPerSec)}/s  wait ${formatPercent(m.stepMs > 0 ? m.waitMs / m.stepMs : 0)} `;
  const legend = " █compute ▒comm ░wait";
  const barWidth = Math.max(4, Math.min(30, width - 5 - text.length - legend.length - 2));
  const [c, n, w] = timeSplit(m.computeMs, m.commMs, m.waitMs, barWidth);
  return (
    <Text wrap="truncate-end">
      <Text bold>comm </Text>
      {text}
      <Text color="green">{"█".repeat(c)}</Text>
      <Text color="blue">{"▒".repeat(n)}</Text>
      <Text color="yellow">{"░".repeat(w)}</Text>
      <Text dimColor>{legend}</Text>
    </Text>
  );
}
