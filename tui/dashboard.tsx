// The dashboard: the panels composed over one DashboardSource, the keys, and runDashboard.
//
// Owns: folding updates into state as they come, redrawing at a steady rate, fitting the
// panels into the terminal's rows and columns, and turning key presses into Controls.
// Never: talks to NATS (a DashboardSource does) or decides what a control means for the
// cluster; `q` only detaches, training goes on.
import { Box, render, useApp, useInput, useStdin, useStdout } from "ink";
import { useCallback, useEffect, useReducer, useRef, useState } from "react";
import { ActorsTable } from "./actors-table.js";
import { CommPanel } from "./comm-panel.js";
import { EventLog } from "./event-log.js";
import { HelpLine } from "./help-line.js";
import { LossChart } from "./loss-chart.js";
import { runPlain } from "./plain.js";
import { RunPanel } from "./run-panel.js";
import { initialState, reduce, scaleControl, type DashboardAction, type DashboardState } from "./state.js";
import { ThroughputPanel } from "./throughput-panel.js";
import type { Control } from "../actors/protocol.js";
import type { DashboardSource } from "./types.js";

/** How the dashboard ended: the user detached, the user stopped the run, or the run ended. */
export type DashboardExit = "detach" | "stop" | "end";

/** Default redraw period: 5 Hz is smooth for a training run and cheap on a shared machine. */
const REFRESH_MS = 200;
/** Redraw period while no update arrives, for the clock-driven figures alone. */
const CLOCK_REFRESH_MS = 1000;

/**
 * Splits the screen between panels. Everything fits in rows - 1 lines: Ink clears the whole
 * terminal when its output reaches the last row, which is exactly the flicker to avoid.
 */
export function layout(columns: number, rows: number, actorCount: number) {
  const width = Math.max(40, columns);
  // run (2) + loss heading + speed + comm + actors header + events heading + help = 8 lines
  const free = Math.max(6, rows - 1 - 8);
  const chartRows = Math.min(12, Math.max(2, Math.floor(free * 0.3)));
  const rest = free - chartRows;
  const actorRows = Math.max(1, Math.min(Math.max(1, actorCount), rest - 2));
  return { width, chartRows, actorRows, eventRows: Math.max(0, rest - actorRows) };
}

export interface DashboardProps {
  source: DashboardSource;
  /** The clock, for elapsed time and heartbeat ages; tests pass a fixed one. */
  now?: () => number;
  refreshMs?: number;
  /** Override the terminal size (tests, captures); otherwise read from stdout and followed on resize. */
  columns?: number;
  rows?: number;
  /** Leave when the run ends (default) or keep the last picture until `q`. */
  exitOnEnd?: boolean;
  onExit?: (how: DashboardExit) => void;
}

/** The size given, or stdout's, redrawn on every resize. */
function useTerminalSize(columns?: number, rows?: number): [number, number] {
  const { stdout } = useStdout();
  const [, resized] = useReducer((n: number) => n + 1, 0);
  useEffect(() => {
    stdout.on("resize", resized);
    return () => {
      stdout.off("resize", resized);
    };
  }, [stdout]);
  return [columns ?? stdout.columns ?? 80, rows ?? stdout.rows ?? 24];
}

export function Dashboard({ source, now = Date.now, refreshMs = REFRESH_MS, columns, rows, exitOnEnd = true, onExit }: DashboardProps) {
  const { exit } = useApp();
  const { isRawModeSupported } = useStdin();
  const [width, height] = useTerminalSize(columns, rows);
  // Updates can come much faster than a terminal should redraw: fold them into a ref and
  // let the timer publish the latest state at a steady rate.
  const latest = useRef<DashboardState>(initialState);
  const [frame, setFrame] = useState(() => ({ state: initialState, now: now() }));
  const leaving = useRef(false);

  // Between updates only the clock moves (elapsed, heartbeat ages): once a second is enough.
  const publish = useCallback(() => {
    setFrame((f) => (latest.current !== f.state || now() - f.now >= CLOCK_REFRESH_MS ? { state: latest.current, now: now() } : f));
  }, [now]);
  const dispatch = useCallback((a: DashboardAction) => {
    latest.current = reduce(latest.current, a);
  }, []);
  const leave = useCallback(
    (how: DashboardExit) => {
      if (leaving.current) return;
      leaving.current = true;
      onExit?.(how);
      exit();
    },
    [exit, onExit],
  );

  useEffect(() => {
    const unsubscribe = source.subscribe(dispatch);
    publish();
    const timer = setInterval(publish, refreshMs);
    return () => {
      clearInterval(timer);
      unsubscribe();
    };
  }, [source, refreshMs, dispatch, publish]);

  useEffect(() => {
    // Leave only after the final picture (with its end reason) has been drawn.
    if (frame.state.ended !== undefined && exitOnEnd) leave("end");
  }, [frame.state.ended, exitOnEnd, leave]);

  const send = (control: Control, then?: () => void) => {
    dispatch({ kind: "control-sent", control, time: now() });
    publish();
    source.control(control).then(then, (err: unknown) => {
      dispatch({ kind: "control-failed", control, message: err instanceof Error ? err.message : String(err), time: now() });
      publish();
    });
  };

  useInput(
    (input) => {
      const state = latest.current;
      if (input === "q") return leave("detach");
      // A run that is over has nothing left to steer.
      if (state.ended !== undefined) return;
      if (input === "Q") return send({ type: "stop", checkpoint: true }, () => leave("stop"));
      if (input === "c") return send({ type: "checkpoint" });
      if (input === "p") return send({ type: state.paused ? "resume" : "pause" });
      if (input === "+" || input === "=" || input === "-") {
        const control = scaleControl(state, input === "-" ? -1 : 1);
        if (control) send(control);
      }
    },
    { isActive: isRawModeSupported },
  );

  return <DashboardView {...frame} columns={width} rows={height} />;
}

/** One frame of the dashboard for a given state: pure, so captures and measurements need no source. */
export function DashboardView({ state, now, columns, rows }: { state: DashboardState; now: number; columns: number; rows: number }) {
  const l = layout(columns, rows, state.actors.length);
  return (
    <Box flexDirection="column" width={l.width}>
      <RunPanel state={state} now={now} width={l.width} />
      <LossChart state={state} width={l.width} height={l.chartRows} />
      <ThroughputPanel state={state} width={l.width} />
      <CommPanel state={state} width={l.width} />
      <ActorsTable state={state} now={now} width={l.width} maxRows={l.actorRows} />
      <EventLog events={state.events} width={l.width} height={l.eventRows} />
      <HelpLine state={state} width={l.width} />
    </Box>
  );
}

export interface RunDashboardOptions extends Pick<DashboardProps, "now" | "refreshMs" | "exitOnEnd"> {
  stdout?: NodeJS.WriteStream;
  stdin?: NodeJS.ReadStream;
  /** Force the one-line-per-step output even on a terminal. */
  plain?: boolean;
  /** Plain mode only: stop following (Ctrl+C). In a terminal, Ctrl+C detaches like `q`. */
  signal?: AbortSignal;
}

/**
 * Shows the run until the user detaches (`q`, Ctrl+C), stops it (`Q`), or it ends. Falls
 * back to plain lines when stdout is not a terminal.
 */
export async function runDashboard(source: DashboardSource, opts: RunDashboardOptions = {}): Promise<DashboardExit> {
  const stdout = opts.stdout ?? process.stdout;
  if (opts.plain || !stdout.isTTY) return runPlain(source, { out: stdout, signal: opts.signal });
  let how: DashboardExit = "detach";
  const app = render(<Dashboard source={source} now={opts.now} refreshMs={opts.refreshMs} exitOnEnd={opts.exitOnEnd} onExit={(h) => (how = h)} />, {
    stdout,
    stdin: opts.stdin ?? process.stdin,
    exitOnCtrlC: true,
    maxFps: Math.ceil(1000 / (opts.refreshMs ?? REFRESH_MS)) + 1,
    // Incremental mode left lines of earlier, shorter frames on screen under tmux; a
    // full redraw of rows - 1 lines at 5 Hz does not flicker.
    incrementalRendering: false,
  });
  await app.waitUntilExit();
  return how;
}
