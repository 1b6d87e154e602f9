// The event log: joins, leaves, deaths, checkpoints, rollbacks, rejected messages, requests.
//
// Owns: showing the newest events that fit, oldest at the top and newest last, each line
// written once and never changed (the look of Ink's <Static>, kept inside a fixed screen).
// Never: reorders or merges events.
import { Box, Text } from "ink";
import { formatClock } from "../runtime/format.js";
import type { ClusterEvent, ClusterEventType } from "../actors/protocol.js";

const TYPE_COLOR: Partial<Record<ClusterEventType, string>> = {
  join: "cyan",
  leave: "yellow",
  death: "red",
  checkpoint: "green",
  rollback: "magenta",
  rejected: "yellow",
  scale: "cyan",
  error: "red",
};

export function eventLine(e: ClusterEvent): string {
  return `${formatClock(e.time)} ${e.type.padEnd(10)} ${e.actor ? `${e.actor}: ` : ""}${e.message}`;
}

/** `height` lines of events under the heading. */
export function EventLog({ events, width, height }: { events: readonly ClusterEvent[]; width: number; height: number }) {
  const shown = height > 0 ? events.slice(-height) : [];
  const heading = `events (${events.length})`;
  return (
    <Box flexDirection="column" width={width}>
      <Text wrap="truncate-end">
        <Text bold>─ {heading} </Text>
        <Text dimColor>{"─".repeat(Math.max(0, width - heading.length - 3))}</Text>
      </Text>
      {shown.map((e, i) => (
        <Text
          // biome-ignore lint/suspicious/noArrayIndexKey: events carry no id; the key is the event's place in the capped log, and these rows hold no state
          key={events.length - shown.length + i}
          wrap="truncate-end"
        >
          <Text dimColor>{formatClock(e.time)} </Text>
          <Text color={TYPE_COLOR[e.type]}>{e.type.padEnd(10)}</Text> {e.actor ? `${e.actor}: ` : ""}
          {e.message}
        </Text>
      ))}
    </Box>
  );
}
