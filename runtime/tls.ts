// TLS for a run whose nats-server listens beyond loopback.
//
// Owns: the run's own certificate authority and the server's certificate, in
// `runs/<name>/tls/` (keys mode 0600), made with the distribution's `openssl` command: it is
// on every machine that has a TLS stack, and Node's crypto cannot issue certificates, so the
// alternative would be a pure-JavaScript X.509 library to audit on top. Clients verify the
// server against the run's CA, which travels in every credentials file (it is public).
// Never: decides when TLS is on (runtime/cluster.ts: whenever the address is not loopback).
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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

/** Whether an address to listen on is every address of this machine. */
export function isWildcard(host: string): boolean {
  return host === "0.0.0.0" || host === "::";
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
  if (isWildcard(host)) for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === "IPv4") ips.add(a.address);
  const dns = new Set(["localhost", hostname()]);
  if (/^[\d.]+$/.test(host) && host !== "0.0.0.0") ips.add(host);
  else if (!/^[\d.:]+$/.test(host)) dns.add(host);
  return { ips: [...ips], dns: [...dns] };
}

/** Makes the run's CA and a server certificate for `host` in `dir`; returns the files and the CA. */
export function makeRunTls(dir: string, run: string, host: string): RunTls {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = (name: string) => join(dir, name);
  openssl(["req", "-x509", ...newKey, "-keyout", file("ca.key"), "-out", file("ca.pem"), "-days", "3650", "-subj", `/CN=aze-run ${run} CA`]);
  chmodSync(file("ca.key"), 0o600);
  const csr = makeHostRequest(dir);
  writeFileSync(file("server.pem"), signHostRequest(dir, csr, certificateNames(host)));
  return { caFile: file("ca.pem"), certFile: file("server.pem"), keyFile: file("server.key"), ca: readFileSync(file("ca.pem"), "utf8") };
}

const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

/**
 * A new server key in `dir/server.key` (mode 0600, it never leaves this host) and a
 * certificate request for it, to be signed by the run's CA (on the host that made it).
 */
export function makeHostRequest(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = (name: string) => join(dir, name);
  openssl(["req", ...newKey, "-keyout", file("server.key"), "-out", file("server.csr"), "-subj", `/CN=${hostname()}`]);
  chmodSync(file("server.key"), 0o600);
  return readFileSync(file("server.csr"), "utf8");
}

/** Whether a name may go into a certificate: an IPv4 or IPv6 address or a DNS name, nothing that could smuggle config. */
function isCertificateName(name: string, ip: boolean): boolean {
  return ip ? /^(\d{1,3}\.){3}\d{1,3}$|^[0-9a-fA-F:]{2,39}$/.test(name) : /^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(name);
}

/**
 * Signs a host's certificate request with the run's CA in `dir` (ca.pem, ca.key), for the
 * addresses and names given, as a certificate that serves both clients and routes. Returns
 * the certificate (PEM). The names come from the request's sender and are checked here.
 */
export function signHostRequest(dir: string, csr: string, names: { ips: string[]; dns: string[] }): string {
  const all = [...names.ips.map((n) => [n, true] as const), ...names.dns.map((n) => [n, false] as const)];
  if (all.length === 0 || all.length > 32) throw new UserError(`a host certificate names 1 to 32 addresses, not ${all.length}`);
  for (const [name, ip] of all)
    if (!isCertificateName(name, ip)) throw new UserError(`"${name}" is not a valid ${ip ? "IP address" : "host name"} for a certificate`);
  if (!/^-----BEGIN CERTIFICATE REQUEST-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE REQUEST-----\n?$/.test(csr))
    throw new UserError("the certificate request is not a PEM CSR");
  const work = mkdtempSync(join(dir, "sign-"));
  try {
    const file = (name: string) => join(work, name);
    const san = [...names.ips.map((ip) => `IP:${ip}`), ...names.dns.map((d) => `DNS:${d}`)].join(",");
    writeFileSync(file("host.ext"), `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\n`);
    writeFileSync(file("host.csr"), csr);
    const serial = ["-set_serial", `0x${randomBytes(16).toString("hex")}`];
    openssl([
      "x509",
      "-req",
      "-in",
      file("host.csr"),
      "-CA",
      join(dir, "ca.pem"),
      "-CAkey",
      join(dir, "ca.key"),
      ...serial,
      "-days",
      "825",
      "-extfile",
      file("host.ext"),
      "-out",
      file("host.pem"),
    ]);
    return readFileSync(file("host.pem"), "utf8");
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Writes a host's TLS files (its key is already in `dir`): the certificate the CA signed and the CA. */
export function writeHostTls(dir: string, cert: string, ca: string): RunTls {
  const file = (name: string) => join(dir, name);
  writeFileSync(file("server.pem"), cert);
  writeFileSync(file("ca.pem"), ca);
  return { caFile: file("ca.pem"), certFile: file("server.pem"), keyFile: file("server.key"), ca };
}

function openssl(args: string[]): void {
  const r = spawnSync("openssl", args, { encoding: "utf8" });
  if (r.error)
    throw new UserError("listening beyond loopback needs TLS, made with `openssl`, which is not installed: run scripts/setup.sh or `apt-get install openssl`.");
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr.trim()}`);
}
