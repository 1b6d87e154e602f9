// The communication line: bytes per second through NATS and where the step's time went.
//
// Owns: the split of a step into compute, communication and waiting, drawn as one bar.
// Never: measures anything; it shows what the coordinator reported for the last step.
import { Text } from "ink";
import { formatBytes, formatPercent } from "./format.js";
import type { DashboardState } from "./state.js";

export interface CommPanelProps {
  state: DashboardState;
  width: number;
}

/** Cells of the bar for compute, comm and wait, in proportion to their times; they sum to `width`. */
export function timeSplit(computeMs: number, commMs: number, waitMs: number, width: number): [number, number, number] {
  const total = computeMs + commMs + waitMs;
  if (!(total > 0)) return [0, 0, 0];
  const comm = Math.round((commMs / total) * width);
  const wait = Math.round((waitMs / total) * width);
  return [Math.max(0, width - comm - wait), comm, wait];
}

export function CommPanel({ state, width }: CommPanelProps) {
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
