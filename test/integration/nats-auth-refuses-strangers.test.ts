// A run's nats-server refuses clients without credentials, and each role may only publish
// where its permissions allow: a compute actor cannot order a shutdown.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeMessage } from "../../runtime/codec.js";
import { connectNats } from "../../runtime/nats.js";
import { subjects } from "../../runtime/subjects.js";
import { startTestServer, waitFor } from "../helpers/cluster.js";

describe("NATS authentication", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  beforeAll(async () => (server = await startTestServer("auth")));
  afterAll(() => server.cleanup());

  it("refuses a client without credentials, and one with a wrong password", async () => {
    await expect(connectNats({ url: server.url, name: "stranger", timeoutMs: 2000 })).rejects.toThrow(/refused the credentials \(none given\)/);
    await expect(connectNats({ url: server.url, name: "liar", creds: { user: "compute", password: "guess" }, timeoutMs: 2000 })).rejects.toThrow(
      /refused the credentials of user "compute"/,
    );
  });

  it("lets each role publish only where its permissions allow", async () => {
    const s = subjects("auth");
    const coordinator = await connectNats({ url: server.url, name: "coord", creds: server.credsOf("coordinator") });
    const compute = await connectNats({ url: server.url, name: "compute", creds: server.credsOf("compute") });
    const received: string[] = [];
    coordinator.subscribe(s.all, {
      callback: (_e, m) => {
        received.push(m.subject);
      },
    });
    await coordinator.flush();
    const errors: string[] = [];
    void (async () => {
      for await (const st of compute.status()) if (st.type === "error") errors.push(String((st as { error?: unknown }).error));
    })();

    compute.publish(s.shutdown, encodeMessage({}));
    compute.publish(s.gradients(0), encodeMessage({ ok: 1 }));
    await compute.flush();
    await waitFor("the permitted message", () => received.includes(s.gradients(0)) || undefined);
    await waitFor("a permissions violation", () => errors.find((e) => /permission/i.test(e)));
    expect(received).not.toContain(s.shutdown);
    await compute.close();
    await coordinator.close();
  });
});
