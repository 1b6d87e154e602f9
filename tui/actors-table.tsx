// The actors table: every process of the run, one row each, from the latest snapshot.
//
// Owns: the columns (kind, id, host, backend, state, groups, step time, heartbeat age,
// memory), their widths at a given terminal width, and cutting the rows to fit.
// Never: infers deaths itself; the coordinator's snapshot says which actor is dead.
import { Box, Text } from "ink";
import { fitCell, formatAge, formatBytes, formatGroups, formatStepMs } from "../runtime/format.js";
import type { DashboardState } from "./state.js";
import type { ActorKind } from "../runtime/subjects.js";
import type { ActorStatus } from "../actors/protocol.js";

const KIND_ORDER: ActorKind[] = ["coordinator", "param-shard", "data-loader", "compute", "node-agent"];

const STATE_COLOR: Record<ActorStatus["state"], string> = {
  starting: "cyan",
  ready: "green",
  working: "green",
  idle: "white",
  paused: "yellow",
  draining: "yellow",
  leaving: "yellow",
  stopped: "gray",
  dead: "red",
};

/** A heartbeat older than this is shown in yellow: the coordinator may soon call it dead. */
const STALE_HEARTBEAT_MS = 3000;

const TITLES = ["kind", "id", "host", "bknd", "state", "groups", "step", "beat", "mem"];

/**
 * The cell widths, in TITLES order; the last three columns are numbers, aligned right. The
 * fixed columns and separators take 54 cells; id and host start at 12 and 8 and share what is left.
 */
function columnWidths(width: number): number[] {
  const spare = Math.max(0, width - 74);
  // Past 28 cells an id or host name is a typo, not information: leave the rest blank.
  return [11, Math.min(28, 12 + Math.ceil(spare / 2)), Math.min(24, 8 + Math.floor(spare / 2)), 4, 8, 6, 6, 5, 6];
}

/** `now` (ms epoch) is for heartbeat ages; past `maxRows` actors, the last row becomes "+N more". */
export function ActorsTable({ state, now, width, maxRows }: { state: DashboardState; now: number; width: number; maxRows: number }) {
  const widths = columnWidths(width);
  const cell = (text: string, i: number) => fitCell(text, widths[i]!, i < 6 ? "left" : "right");
  const stepById = new Map((state.last?.actors ?? []).map((a) => [a.id, a]));
  const sorted = [...state.actors].sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind) || a.id.localeCompare(b.id));
  const shown = sorted.length > maxRows ? sorted.slice(0, Math.max(0, maxRows - 1)) : sorted;
  const hidden = sorted.length - shown.length;
  return (
    <Box flexDirection="column" width={width}>
      <Text bold wrap="truncate-end">
        {TITLES.map(cell).join(" ")}
      </Text>
      {shown.map((a) => {
        const step = stepById.get(a.id);
        const age = now - a.lastHeartbeat;
        const cells = [
          a.kind,
          a.id,
          a.host,
          a.backend ?? "",
          a.state,
          a.kind === "compute" ? formatGroups(step?.groups ?? a.groups) : "",
          step ? formatStepMs(step.stepMs) : "",
          a.state === "dead" ? "" : formatAge(age),
          a.memoryBytes === undefined ? "" : formatBytes(a.memoryBytes).replace(" ", ""),
        ].map(cell);
        const dead = a.state === "dead";
        return (
          <Text key={a.id} wrap="truncate-end" dimColor={dead}>
            {cells.slice(0, 4).join(" ")} <Text color={STATE_COLOR[a.state]}>{cells[4]}</Text> {cells[5]} {cells[6]}{" "}
            <Text color={!dead && age > STALE_HEARTBEAT_MS ? "yellow" : undefined}>{cells[7]}</Text> {cells[8]}
          </Text>
        );
      })}
      {hidden > 0 ? <Text dimColor>{`+${hidden} more actors`}</Text> : null}
      {sorted.length === 0 ? <Text dimColor>no actors reported yet</Text> : null}
    </Box>
  );
}
