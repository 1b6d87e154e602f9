// A Prometheus text endpoint: the coordinator's view of the run for scrapers.
//
// Owns: the HTTP server on 127.0.0.1 and the exposition format (text/plain; version=0.0.4).
// Never: computes metrics; it renders whatever gauges it is handed at scrape time.
import { createServer, type Server } from "node:http";

export interface Gauge {
  name: string;
  help: string;
  /** One sample per label set; labels may be empty. */
  samples: { labels?: Record<string, string>; value: number }[];
}

function renderPrometheus(gauges: Gauge[]): string {
  const lines: string[] = [];
  for (const g of gauges) {
    lines.push(`# HELP ${g.name} ${g.help}`, `# TYPE ${g.name} gauge`);
    for (const s of g.samples) {
      const labels = Object.entries(s.labels ?? {});
      const rendered = labels.length ? `{${labels.map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, "_")}"`).join(",")}}` : "";
      lines.push(`${g.name}${rendered} ${Number.isFinite(s.value) ? s.value : "NaN"}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

/** Serves GET /metrics on 127.0.0.1 at a free port; resolves with the server and its URL. */
export function servePrometheus(collect: () => Gauge[]): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    if (req.url !== "/metrics") {
      res.writeHead(404).end("only /metrics is served here\n");
      return;
    }
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(renderPrometheus(collect()));
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      resolve({ server, url: `http://127.0.0.1:${port}/metrics` });
    });
  });
}
