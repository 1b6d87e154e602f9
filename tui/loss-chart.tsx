// The loss chart: the whole run's loss as a block chart, with the latest, smoothed and best values.
//
// Owns: turning the downsampled loss curve into rows of eighth-block characters.
// Never: keeps history itself (the reducer does) or reads the terminal size (it gets `width`).
import { Box, Text } from "ink";
import { fitCell, formatLoss } from "../runtime/format.js";
import { lossColumns, type DashboardState } from "./state.js";

const EIGHTHS = [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];
const GUTTER = 7;

/**
 * values is (W), the chart is (height rows, W columns): row 0 is the top. The lowest value
 * still gets one eighth so a flat curve stays visible.
 */
export function blockChart(values: readonly number[], height: number): string[] {
  const finite = values.filter(Number.isFinite);
  const min = Math.min(...finite);
  const max = Math.max(...finite);
  const span = max - min;
  const levels = values.map((v) => {
    if (!Number.isFinite(v)) return 0;
    const share = span > 0 ? (v - min) / span : 0.5;
    return Math.max(1, Math.round(share * height * 8));
  });
  const rows: string[] = [];
  for (let r = 0; r < height; r++) {
    const base = (height - 1 - r) * 8;
    rows.push(levels.map((l) => EIGHTHS[Math.min(8, Math.max(0, l - base))]!).join(""));
  }
  return rows;
}

/** `height` rows of chart under the heading line. */
export function LossChart({ state, width, height }: { state: DashboardState; width: number; height: number }) {
  const last = state.last?.loss;
  const heading = [
    `loss ${last === undefined ? "–" : formatLoss(last)}`,
    `ema ${state.lossEma === undefined ? "–" : formatLoss(state.lossEma)}`,
    state.minLoss ? `best ${formatLoss(state.minLoss.loss)} @${state.minLoss.step}` : "",
    state.loss.bucket > 1 ? `(${state.loss.bucket} steps/pt)` : "",
  ]
    .filter(Boolean)
    .join("  ");
  const columns = lossColumns(state.loss, Math.max(1, width - GUTTER));
  const rows = columns.length > 0 ? blockChart(columns, height) : Array<string>(height).fill("");
  const finite = columns.filter(Number.isFinite);
  const top = finite.length ? formatLoss(Math.max(...finite)) : "";
  const bottom = finite.length ? formatLoss(Math.min(...finite)) : "";
  return (
    <Box flexDirection="column" width={width}>
      <Text wrap="truncate-end">
        <Text bold>─ </Text>
        {heading} <Text dimColor>{"─".repeat(Math.max(0, width - heading.length - 3))}</Text>
      </Text>
      {/* Two multi-line texts, not a text per row: measuring block characters is most of
          a frame's cost in Ink, and this measures each column once. */}
      <Box>
        <Text dimColor>{rows.map((_, r) => `${fitCell(r === 0 ? top : r === height - 1 ? bottom : "", GUTTER - 1, "right")} `).join("\n")}</Text>
        <Text color="cyan">{rows.join("\n")}</Text>
      </Box>
    </Box>
  );
}
