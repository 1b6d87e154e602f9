// A run whose nats-server listens beyond loopback (`cluster up --listen`) speaks only TLS,
// with a certificate from the run's own CA: a plain-text client and a TLS client that does
// not trust that CA are refused; the run's credentials files carry the CA and connect.
import { readFileSync, statSync } from "node:fs";
import { createConnection } from "node:net";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { clusterDown, clusterUp, fetchStatus } from "../../runtime/cluster.js";
import { readCredentials } from "../../runtime/nats-server.js";
import { connectNats } from "../../runtime/nats.js";
import { makeRunTls } from "../../runtime/tls.js";
import { removeDir, tempDir } from "../helpers/cluster.js";

/** Everything the server says to a client that sends its CONNECT in plain text, until it hangs up. */
function plainTextAnswer(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    let said = "";
    const socket = createConnection({ host: hostname, port: Number(port) }, () => socket.write('CONNECT {"verbose":false}\r\nPING\r\n'));
    socket.on("data", (d) => (said += d.toString()));
    socket.on("close", () => resolve(said));
    socket.on("error", reject);
    socket.setTimeout(10_000, () => socket.destroy());
  });
}

/** This machine's first non-loopback IPv4 address, if it has one: the address another host would use. */
function outsideAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  return undefined;
}

describe("listening beyond loopback", () => {
  const cwd = tempDir();
  const runsRoot = join(cwd, "runs");
  afterAll(async () => {
    await clusterDown({ run: "tls", runsRoot }).catch(() => undefined);
    removeDir(cwd);
  });

  it("refuses plain text and strangers to the run's CA, and serves the run's own files", async () => {
    const state = await clusterUp({ run: "tls", empty: true, compute: 1, listen: "0.0.0.0", detach: true, runsRoot });
    const conf = readFileSync(join(runsRoot, "tls", "nats-server.conf"), "utf8");
    expect(conf).toMatch(/listen: "0\.0\.0\.0:\d+"/);
    expect(conf).toMatch(/tls \{/);
    expect(statSync(join(runsRoot, "tls", "tls", "ca.key")).mode & 0o777).toBe(0o600);
    const port = new URL(state.natsUrl).port;
    const urls = [`nats://127.0.0.1:${port}`, ...(outsideAddress() ? [`nats://${outsideAddress()}:${port}`] : [])];
    const client = readCredentials(join(state.credsDir!, "client.json"));
    const otherCa = makeRunTls(join(cwd, "other-tls"), "other", "127.0.0.1").ca;
    expect(client.ca).toMatch(/BEGIN CERTIFICATE/);
    expect(readCredentials(join(state.credsDir!, "worker.json")).ca).toBe(client.ca);

    for (const url of urls) {
      // Plain text on the wire: the server says TLS is required, never answers the PING, hangs up.
      const said = await plainTextAnswer(url);
      expect(said).toMatch(/"tls_required":true/);
      expect(said).not.toMatch(/PONG/);
      // A client of ours without the CA upgrades to TLS, and cannot trust the server.
      const { ca: _ca, ...withoutCa } = client;
      await expect(connectNats({ url, creds: withoutCa, name: "no-ca", timeoutMs: 3000 })).rejects.toThrow(/certificate this client does not trust/);
      // TLS, but trusting another run's CA: this server's certificate does not chain to it.
      await expect(connectNats({ url, creds: { ...client, ca: otherCa }, name: "stranger", timeoutMs: 3000 })).rejects.toThrow(/certificate/i);
      const nc = await connectNats({ url, creds: client, name: "tls-client", timeoutMs: 5000 });
      const status = await fetchStatus(nc, "tls");
      expect(status.actors.some((a) => a.kind === "compute" && a.state === "ready")).toBe(true);
      await nc.close();
    }
  }, 120_000);
});
