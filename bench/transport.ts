// bench:transport — how fast tensors move between two processes.
//
// In one run, for f32 tensors of 1, 8 and 64 MiB sent from this process to a receiver
// process: (1) the codec path (msgpack chunks with checksums, reassembled and verified),
// (2) the same bytes published raw through the same nats-server in max_payload pieces,
// (3) the same bytes over a raw loopback TCP socket. Prints GB/s and the ratios.
import { fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { TensorAssembler, tensorFrom } from "../runtime/codec.js";
import { createAuthority, mintIdentity } from "../runtime/identity.js";
import { maxPayloadBytes, startNatsServer, type Secret } from "../runtime/nats-server.js";
import { connectNats, publishTensor, type NatsConnection } from "../runtime/nats.js";
import { median } from "./peers.js";

const sizesMiB = [1, 8, 64];
/** Bytes sent per measurement: enough repetitions that start-up costs vanish. */
const bytesPerTrial = 512 * 1024 * 1024;
const trials = 3;

// ---- receiver (child process) ----------------------------------------------------------

async function receiver(url: string, creds: Secret): Promise<void> {
  const nc = await connectNats({ url, name: "bench-receiver", creds });
  // Codec path: reassemble and verify every tensor, ack each completed batch.
  let assembler = new TensorAssembler({ maxBytes: 1024 ** 3 });
  let tensors = 0;
  nc.subscribe("aze.bench.codec", {
    callback: (_e, m) => {
      if (assembler.accept(m.data)) tensors++;
    },
  });
  // Raw path: count bytes only.
  let rawBytes = 0;
  nc.subscribe("aze.bench.raw", {
    callback: (_e, m) => {
      rawBytes += m.data.byteLength;
    },
  });
  nc.subscribe("aze.bench.wait", {
    callback: (_e, m) => {
      const { kind, count } = JSON.parse(new TextDecoder().decode(m.data)) as { kind: "codec" | "raw"; count: number };
      const poll = () => {
        const done = kind === "codec" ? tensors >= count : rawBytes >= count;
        if (!done) return void setTimeout(poll, 1);
        tensors = 0;
        rawBytes = 0;
        assembler = new TensorAssembler({ maxBytes: 1024 ** 3 });
        m.respond(new Uint8Array([1]));
      };
      poll();
    },
  });
  // TCP path: one connection per trial; acknowledge once the expected bytes are in.
  const tcp = createServer((socket) => {
    let expected = -1;
    let got = 0;
    socket.on("data", (chunk: Buffer) => {
      if (expected < 0) {
        expected = chunk.readUInt32LE(0) * 1024 * 1024;
        got = chunk.byteLength - 4;
      } else got += chunk.byteLength;
      if (got >= expected) socket.end(Buffer.from([1]));
    });
  });
  tcp.listen(0, "127.0.0.1", () => process.send!({ tcpPort: (tcp.address() as { port: number }).port }));
  await nc.flush();
}

// ---- sender (this process) --------------------------------------------------------------

/** Sends the tensor `reps` times, then waits until the receiver holds them all: whole tensors (codec) or bytes (raw). */
async function timeNats(nc: NatsConnection, kind: "codec" | "raw", tensor: Float32Array, reps: number): Promise<number> {
  const bytes = new Uint8Array(tensor.buffer);
  const piece = nc.info!.max_payload;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) {
    if (kind === "codec") publishTensor(nc, "aze.bench.codec", tensorFrom(tensor, [tensor.length]), { i });
    else for (let off = 0; off < bytes.byteLength; off += piece) nc.publish("aze.bench.raw", bytes.subarray(off, off + piece));
  }
  await nc.request("aze.bench.wait", JSON.stringify({ kind, count: kind === "codec" ? reps : reps * bytes.byteLength }), { timeout: 120_000 });
  return performance.now() - t0;
}

function timeTcp(port: number, bytes: Uint8Array, reps: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const socket = tcpConnect(port, "127.0.0.1", () => {
      const header = Buffer.alloc(4);
      header.writeUInt32LE((reps * bytes.byteLength) / (1024 * 1024));
      socket.write(header);
      for (let i = 0; i < reps; i++) socket.write(bytes);
    });
    socket.on("data", () => {
      socket.destroy();
      resolve(performance.now() - t0);
    });
    socket.on("error", reject);
  });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "aze-bench-"));
  const authority = await createAuthority("bench", maxPayloadBytes);
  const server = await startNatsServer({ dir, run: "bench", trust: authority.serverConfig });
  // Two identities of the same shape as the run's: each may use the bench's subjects only.
  const perms = { publish: ["aze.bench.>"], subscribe: ["aze.bench.>", "_INBOX.>"], respond: true };
  const sender = await mintIdentity(authority.issuer, "client", "bench-sender", undefined, perms);
  const receiverCreds = await mintIdentity(authority.issuer, "client", "bench-receiver", undefined, perms);
  const child = fork(fileURLToPath(import.meta.url), ["--receiver", server.url], {
    stdio: "inherit",
    env: { ...process.env, AZE_BENCH_CREDS: JSON.stringify(receiverCreds) },
  });
  try {
    const tcpPort = await new Promise<number>((resolve) => child.once("message", (m: { tcpPort: number }) => resolve(m.tcpPort)));
    const nc = await connectNats({ url: server.url, name: "bench-sender", creds: sender });
    console.log(
      `bench:transport — f32 tensors from one process to another on 127.0.0.1 (nats-server max_payload ${nc.info!.max_payload / 2 ** 20} MiB), median of ${trials} trials of ${bytesPerTrial / 2 ** 20} MiB`,
    );
    console.log(
      `${"size".padEnd(8)} ${"codec GB/s".padStart(11)} ${"raw NATS".padStart(9)} ${"raw TCP".padStart(8)} ${"codec/NATS".padStart(11)} ${"NATS/TCP".padStart(9)}`,
    );
    for (const mib of sizesMiB) {
      const tensor = new Float32Array((mib * 1024 * 1024) / 4).map((_, i) => i * 0.5);
      const bytes = new Uint8Array(tensor.buffer);
      const reps = bytesPerTrial / bytes.byteLength;
      const gbps = (ms: number) => (reps * bytes.byteLength) / (ms / 1000) / 1e9;
      const codec: number[] = [];
      const raw: number[] = [];
      const tcp: number[] = [];
      await timeNats(nc, "codec", tensor, 1); // warm-up
      // Interleave the three paths so machine noise hits them alike.
      for (let t = 0; t < trials; t++) {
        codec.push(gbps(await timeNats(nc, "codec", tensor, reps)));
        raw.push(gbps(await timeNats(nc, "raw", tensor, reps)));
        tcp.push(gbps(await timeTcp(tcpPort, bytes, reps)));
      }
      const [c, r, p] = [median(codec), median(raw), median(tcp)];
      console.log(
        `${`${mib} MiB`.padEnd(8)} ${c.toFixed(2).padStart(11)} ${r.toFixed(2).padStart(9)} ${p.toFixed(2).padStart(8)} ${`${((c / r) * 100).toFixed(0)}%`.padStart(11)} ${`${((r / p) * 100).toFixed(0)}%`.padStart(9)}`,
      );
    }
    await nc.close();
  } finally {
    child.kill("SIGKILL");
    process.kill(server.pid, "SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--receiver") await receiver(process.argv[3]!, JSON.parse(process.env.AZE_BENCH_CREDS!) as Secret);
else await main();
