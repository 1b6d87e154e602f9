// Number and text formatting shared by the dashboard panels, the plain fallback and the
// command line's progress bars.
//
// Owns: how counts, bytes, durations, rates, times and cells look on screen.
// Never: reads the clock or the terminal; every function is pure.

/** 3400 → "3.4k", 1.2e6 → "1.2M"; three significant digits at most, never "1000k". */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return "–";
  const suffixes = ["", "k", "M", "G", "T"];
  let x = n;
  let i = 0;
  // Rounding decides the unit: 999.7 prints as "1k", not "1000".
  while (i < suffixes.length - 1 && Math.abs(Number(trimDigits(x))) >= 1000) {
    x /= 1000;
    i++;
  }
  return `${trimDigits(x)}${suffixes[i]}`;
}

function trimDigits(x: number): string {
  const abs = Math.abs(x);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return String(Number(x.toFixed(digits)));
}

/** Bytes with binary-free SI units: 1_210_000 → "1.21 MB". */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return "–";
  if (Math.abs(n) < 1000) return `${Math.round(n)} B`;
  return `${formatCount(n).replace(/([kMGT])$/, " $1")}B`;
}

/** 83_000 → "1m23s", 5_400_000 → "1h30m"; never more than two units. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "–";
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, "0")}h`;
}

/** A heartbeat age: tenths of a second while it is fresh, then as a duration. */
export function formatAge(ms: number): string {
  if (!Number.isFinite(ms)) return "–";
  return ms < 10_000 ? `${(Math.max(0, ms) / 1000).toFixed(1)}s` : formatDuration(ms);
}

/** Learning rates read best in scientific notation: 0.0012 → "1.2e-3". */
export function formatLr(lr: number): string {
  if (lr === 0) return "0";
  const [mantissa, exponent] = lr.toExponential(1).split("e");
  return `${mantissa}e${Number(exponent)}`;
}

export function formatLoss(loss: number): string {
  return Number.isFinite(loss) ? loss.toFixed(3) : String(loss);
}

export function formatPercent(share: number): string {
  return Number.isFinite(share) ? `${(share * 100).toFixed(share < 0.1 ? 1 : 0)}%` : "–";
}

/** Milliseconds of a step: 412.3 → "412ms", 2300 → "2.30s". */
export function formatStepMs(ms: number): string {
  if (!Number.isFinite(ms)) return "–";
  return ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(2)}s`;
}

/** Wall-clock time of day in UTC, "hh:mm:ss": cluster logs from many hosts line up. */
export function formatClock(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(11, 19);
}

/** Gradient groups as ranges: [0,1,2,5] → "0-2,5". */
export function formatGroups(groups: readonly number[] | undefined): string {
  if (!groups || groups.length === 0) return "–";
  const ranges: [number, number][] = [];
  for (const g of [...groups].sort((a, b) => a - b)) {
    const last = ranges.at(-1);
    if (last && g === last[1] + 1) last[1] = g;
    else ranges.push([g, g]);
  }
  return ranges.map(([first, end]) => (first === end ? `${first}` : `${first}-${end}`)).join(",");
}

/** Cut or pad to exactly `width` cells; a cut string ends in "…" so it never looks whole. */
export function fitCell(text: string, width: number, align: "left" | "right" = "left"): string {
  if (width <= 0) return "";
  if (text.length > width) return width === 1 ? "…" : `${text.slice(0, width - 1)}…`;
  return align === "left" ? text.padEnd(width) : text.padStart(width);
}

/** A horizontal bar of `width` cells filled to `share` (0..1), with eighth-cell precision. */
export function formatBar(share: number, width: number): string {
  const clamped = Math.min(1, Math.max(0, Number.isFinite(share) ? share : 0));
  const eighths = Math.round(clamped * width * 8);
  const full = Math.floor(eighths / 8);
  const partial = eighths % 8;
  const partials = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
  const filled = "█".repeat(full) + partials[partial]!;
  return filled + "░".repeat(Math.max(0, width - filled.length));
}
