// A run's nats-server refuses clients without a token of the run, and each identity may
// only publish on its own subjects: a compute actor cannot order a shutdown, send a gradient
// in another actor's name, or broadcast parameters as a shard; nobody reads another's replies.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeMessage } from "../../runtime/codec.js";
import { createAuthority, mintIdentity } from "../../runtime/identity.js";
import { maxPayloadBytes } from "../../runtime/nats-server.js";
import { connectNats } from "../../runtime/nats.js";
import { subjects } from "../../runtime/subjects.js";
import { startTestServer, violations, waitFor } from "../helpers/cluster.js";

/** Permission errors the server sent this connection, as text. */

describe("NATS identities", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  beforeAll(async () => (server = await startTestServer("auth")));
  afterAll(() => server.cleanup());

  it("refuses a client without credentials, one with a password, and one whose token another run signed", async () => {
    await expect(connectNats({ url: server.url, name: "stranger", timeoutMs: 2000 })).rejects.toThrow(/refused the credentials \(none given\)/);
    await expect(
      connectNats({ url: server.url, name: "liar", creds: { name: "compute", user: "compute", password: "guess" }, timeoutMs: 2000 }),
    ).rejects.toThrow(/refused the credentials of "compute"/);
    const other = await createAuthority("auth", maxPayloadBytes);
    const forged = await mintIdentity(other.issuer, "coordinator", "coordinator");
    await expect(connectNats({ url: server.url, name: "forger", creds: forged, timeoutMs: 2000 })).rejects.toThrow(/refused the credentials/);
  });

  it("lets each identity publish only on its own subjects", async () => {
    const s = subjects("auth");
    const watcher = await connectNats({ url: server.url, name: "coord", creds: await server.credsOf("coordinator") });
    const compute = await connectNats({ url: server.url, name: "compute-1", creds: await server.credsOf("compute", "compute-1") });
    const received: string[] = [];
    watcher.subscribe(s.all, { callback: (_e, m) => void received.push(m.subject) });
    await watcher.flush();
    const errors = violations(compute);

    compute.publish(s.shutdown, encodeMessage({}));
    compute.publish(s.gradients(0, "compute-2"), encodeMessage({ forged: 1 })); // in another actor's name
    compute.publish(s.params(0), encodeMessage({ forged: 1 })); // as if it were shard 0
    compute.publish(s.heartbeat("param-shard", "shard-0"), encodeMessage({ forged: 1 }));
    compute.publish(s.step, encodeMessage({ forged: 1 }));
    compute.publish(s.gradients(0, "compute-1"), encodeMessage({ ok: 1 })); // its own: allowed
    await compute.flush();
    await waitFor("the permitted message", () => received.includes(s.gradients(0, "compute-1")) || undefined);
    await waitFor("five permission violations", () => errors.filter((e) => /permission/i.test(e)).length >= 5 || undefined);
    for (const subject of [s.shutdown, s.gradients(0, "compute-2"), s.params(0), s.heartbeat("param-shard", "shard-0"), s.step])
      expect(received).not.toContain(subject);
    await compute.close();
    await watcher.close();
  });

  it("keeps each identity's replies to itself", async () => {
    const s = subjects("auth");
    const shard = await connectNats({ url: server.url, name: "shard-0", creds: await server.credsOf("param-shard", "shard-0") });
    const snoop = await connectNats({ url: server.url, name: "compute-9", creds: await server.credsOf("compute", "compute-9") });
    const errors = violations(snoop);
    // Another identity's inbox, or every inbox: refused by the server.
    const mine = snoop.subscribe("_INBOX.compute-9.>");
    const theirs = snoop.subscribe("_INBOX.shard-0.>");
    const all = snoop.subscribe("_INBOX.>");
    await snoop.flush();
    await waitFor("two refused subscriptions", () => errors.filter((e) => /permission/i.test(e)).length >= 2 || undefined);
    expect(errors.join("\n")).toMatch(/_INBOX\.shard-0/);
    expect(errors.join("\n")).toMatch(/_INBOX\.>/);
    expect(mine.isClosed()).toBe(false);
    // A request's reply still reaches its requester: the responder may answer once, on that inbox only.
    const agent = await connectNats({ url: server.url, name: "agent-x", creds: await server.credsOf("node-agent", "agent-x") });
    agent.subscribe(s.control("agent-x"), { callback: (_e, m) => void m.respond(encodeMessage({ ok: true })) });
    await agent.flush();
    const coordinator = await connectNats({ url: server.url, name: "coordinator", creds: await server.credsOf("coordinator") });
    const reply = await coordinator.request(s.control("agent-x"), encodeMessage({ op: "status" }), { timeout: 5000 });
    expect(reply.subject.startsWith("_INBOX.coordinator.")).toBe(true);
    void theirs;
    void all;
    for (const nc of [shard, snoop, agent, coordinator]) await nc.close();
  });
});
