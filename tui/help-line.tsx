// The help line: the keys the dashboard answers to.
//
// Owns: naming each key with what it does right now (pause or resume, the next scale).
// Never: handles the keys; the dashboard does.
import { Text } from "ink";
import { liveComputeCount, type DashboardState } from "./state.js";

export function HelpLine({ state, width }: { state: DashboardState; width: number }) {
  const compute = state.computeTarget ?? liveComputeCount(state);
  const keys: [string, string][] =
    state.ended !== undefined
      ? [["q", "exit"]]
      : [
          ["+/-", `compute (${compute})`],
          ["c", "checkpoint"],
          ["p", state.paused ? "resume" : "pause"],
          ["q", "detach"],
          ["Q", "checkpoint+stop"],
        ];
  let used = 0;
  const fitting = keys.filter(([k, what]) => {
    used += k.length + what.length + 4;
    return used <= width;
  });
  return (
    <Text wrap="truncate-end">
      {fitting.map(([k, what]) => (
        <Text key={k}>
          <Text inverse bold>{` ${k} `}</Text>
          <Text>{` ${what} `}</Text>
        </Text>
      ))}
    </Text>
  );
}
