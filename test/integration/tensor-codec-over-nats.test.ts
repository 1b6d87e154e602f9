// 100 MB of f32 through a real nats-server in chunks under max_payload, byte for byte; a
// corrupted chunk in flight makes the receiver reject the whole tensor.
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CodecError, decodeMessage, encodeMessage, encodeTensorChunks, tensorFrom, TensorAssembler, type Reassembled } from "../../runtime/codec.js";
import { maxPayloadBytes } from "../../runtime/nats-server.js";
import { connectNats, publishTensor, type NatsConnection } from "../../runtime/nats.js";
import { startTestServer, waitFor } from "../helpers/cluster.js";

describe("tensor codec over NATS", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let sender: NatsConnection;
  let receiver: NatsConnection;
  beforeAll(async () => {
    server = await startTestServer("codec");
    sender = await connectNats({ url: server.url, name: "sender", creds: await server.credsOf("compute", "sender") });
    receiver = await connectNats({ url: server.url, name: "receiver", creds: await server.credsOf("coordinator", "receiver") });
  });
  afterAll(async () => {
    await sender?.close();
    await receiver?.close();
    server.cleanup();
  });

  function listen(subject: string) {
    const assembler = new TensorAssembler<{ step: number }>();
    const done: Reassembled<{ step: number }>[] = [];
    const rejected: string[] = [];
    receiver.subscribe(subject, {
      callback: (_e, m) => {
        try {
          const out = assembler.accept(m.data);
          if (out) done.push(out);
        } catch (err) {
          if (!(err instanceof CodecError)) throw err;
          rejected.push(err.message);
        }
      },
    });
    return { done, rejected };
  }

  it("round-trips 100 MB in chunks", async () => {
    expect(sender.info!.max_payload).toBe(maxPayloadBytes);
    const values = new Float32Array(25 * 1024 * 1024);
    for (let i = 0; i < values.length; i++) values[i] = Math.sin(i) * 1e3;
    const { done } = listen("aze.codec.train.grad.0.sender");
    await receiver.flush();
    publishTensor(sender, "aze.codec.train.grad.0.sender", tensorFrom(values, [25, 1024, 1024]), { step: 7 });
    await sender.flush();
    const got = await waitFor("the whole tensor", () => done[0], 30_000);
    expect(got.meta).toEqual({ step: 7 });
    expect(got.tensor.shape).toEqual([25, 1024, 1024]);
    const digest = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
    expect(digest(got.tensor.bytes)).toBe(digest(new Uint8Array(values.buffer)));
  });

  it("rejects a tensor whose chunk was corrupted in flight", async () => {
    const { done, rejected } = listen("aze.codec.train.grad.1.sender");
    await receiver.flush();
    const chunks = encodeTensorChunks(tensorFrom(new Float32Array(3 * 1024 * 1024).fill(1), [3, 1024, 1024]), { step: 8 }, sender.info!.max_payload);
    expect(chunks.length).toBeGreaterThan(1);
    const broken = decodeMessage<Record<string, unknown> & { bytes: Uint8Array }>(chunks[1]!);
    broken.bytes[12345]! ^= 0x40;
    chunks[1] = encodeMessage(broken);
    for (const c of chunks) sender.publish("aze.codec.train.grad.1.sender", c);
    await sender.flush();
    await waitFor("the rejection", () => rejected[0]);
    expect(rejected[0]).toMatch(/fails its checksum/);
    await new Promise((r) => setTimeout(r, 200));
    expect(done).toHaveLength(0);
  });
});
