// The throughput line: tokens per second now and smoothed, step time, and MFU when known.
//
// Owns: how fast the run goes, as one line.
// Never: guesses a peak FLOP/s; MFU appears only when the backend reported one.
import { Text } from "ink";
import { formatCount, formatPercent, formatStepMs } from "../runtime/format.js";
import { mfu, type DashboardState } from "./state.js";

export function ThroughputPanel({ state, width }: { state: DashboardState; width: number }) {
  const m = state.last;
  const utilisation = mfu(state);
  const parts = m
    ? [
        `${formatCount(m.tokensPerSec)} tok/s`,
        `avg ${formatCount(state.tokensPerSecEma ?? m.tokensPerSec)}`,
        `step ${formatStepMs(m.stepMs)}`,
        `grad norm ${m.gradNorm.toFixed(2)}`,
        utilisation === undefined ? "" : `MFU ${formatPercent(utilisation)}`,
      ]
    : ["no steps yet"];
  return (
    <Text wrap="truncate-end">
      <Text bold>speed </Text>
      {parts
        .filter(Boolean)
        .join("  ")
        .slice(0, Math.max(0, width - 6))}
    </Text>
  );
}
