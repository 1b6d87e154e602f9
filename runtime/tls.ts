// TLS for a run whose nats-server listens beyond loopback.
//
// Owns: the run's own certificate authority and the server's certificate, in
// `runs/<name>/tls/` (keys mode 0600), made with the distribution's `openssl` command: it is
// on every machine that has a TLS stack, and Node's crypto cannot issue certificates, so the
// alternative would be a pure-JavaScript X.509 library to audit on top. Clients verify the
// server against the run's CA, which travels in every credentials file (it is public).
// Never: decides when TLS is on (runtime/cluster.ts: whenever the address is not loopback).
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname, networkInterfaces } from "node:os";
import { join } from "node:path";
import { UserError } from "./errors.js";

export interface RunTls {
  caFile: string;
  certFile: string;
  keyFile: string;
  /** The CA certificate (PEM): what a client needs to trust the run's servers. */
  ca: string;
}

/** Whether an address to listen on reaches only this machine. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

/**
 * The addresses a certificate for a server listening on `host` must name: the host itself,
 * loopback, and, for a wildcard address, every address of this machine.
 */
export function certificateNames(host: string): { ips: string[]; dns: string[] } {
  const ips = new Set(["127.0.0.1"]);
  if (host === "0.0.0.0" || host === "::")
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === "IPv4") ips.add(a.address);
  const dns = new Set(["localhost", hostname()]);
  if (/^[\d.]+$/.test(host) && host !== "0.0.0.0") ips.add(host);
  else if (!/^[\d.:]+$/.test(host)) dns.add(host);
  return { ips: [...ips], dns: [...dns] };
}

/** Makes the run's CA and a server certificate for `host` in `dir`; returns the files and the CA. */
export function makeRunTls(dir: string, run: string, host: string): RunTls {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = (name: string) => join(dir, name);
  const { ips, dns } = certificateNames(host);
  const san = [...ips.map((ip) => `IP:${ip}`), ...dns.map((d) => `DNS:${d}`)].join(",");
  writeFileSync(file("server.ext"), `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl(["req", "-x509", ...ec, "-keyout", file("ca.key"), "-out", file("ca.pem"), "-days", "3650", "-subj", `/CN=aze-run ${run} CA`]);
  openssl(["req", ...ec, "-keyout", file("server.key"), "-out", file("server.csr"), "-subj", `/CN=${hostname()}`]);
  openssl([
    "x509",
    "-req",
    "-in",
    file("server.csr"),
    "-CA",
    file("ca.pem"),
    "-CAkey",
    file("ca.key"),
    "-CAcreateserial",
    "-days",
    "825",
    "-extfile",
    file("server.ext"),
    "-out",
    file("server.pem"),
  ]);
  for (const key of ["ca.key", "server.key"]) chmodSync(file(key), 0o600);
  return { caFile: file("ca.pem"), certFile: file("server.pem"), keyFile: file("server.key"), ca: readFileSync(file("ca.pem"), "utf8") };
}

function openssl(args: string[]): void {
  const r = spawnSync("openssl", args, { encoding: "utf8" });
  if (r.error)
    throw new UserError("listening beyond loopback needs TLS, made with `openssl`, which is not installed: run scripts/setup.sh or `apt-get install openssl`.");
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr.trim()}`);
}
