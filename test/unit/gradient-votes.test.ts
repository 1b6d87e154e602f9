// `verify: 2`: a block is accepted only when two actors dealt it sent the same bytes; two
// differing copies ask for a third, which outvotes the odd one; three that all differ have no
// majority. Pairs prefer actors of different hosts.
import { describe, expect, it } from "vitest";
import { GradientVotes, pairActors } from "../../actors/gradient-votes.js";
import { configHash, parseRunConfig } from "../../runtime/config.js";

const bytes = (...xs: number[]) => new Uint8Array(Float32Array.from(xs).buffer);
const block = { lo: 0, hi: 2 };

describe("gradient votes", () => {
  it("waits for two copies, then accepts identical bytes from the two actors dealt the block", () => {
    const votes = new GradientVotes(4);
    votes.deal({ "compute-0": [0, 1], "compute-1": [0, 1] });
    votes.add(block, "compute-0", bytes(1, 2, 3));
    expect(votes.vote("0-2")).toEqual({ verdict: "waiting" });
    votes.add(block, "compute-1", bytes(1, 2, 3));
    const vote = votes.vote("0-2");
    expect(vote).toMatchObject({ verdict: "accepted", by: ["compute-0", "compute-1"], odd: [] });
    expect(vote.verdict === "accepted" && [...vote.bytes]).toEqual([...bytes(1, 2, 3)]);
  });

  it("compares bytes, not numbers: -0 and 0 disagree", () => {
    const votes = new GradientVotes(4);
    votes.deal({ a: [0, 1], b: [0, 1] });
    votes.add(block, "a", bytes(0));
    votes.add(block, "b", bytes(-0));
    expect(votes.vote("0-2")).toEqual({ verdict: "disagreed", actors: ["a", "b"] });
  });

  it("a third copy settles a disagreement and names the odd actor", () => {
    const votes = new GradientVotes(4);
    votes.deal({ honest: [0, 1], liar: [0, 1] });
    votes.add(block, "liar", bytes(1, 2, 3.0000002));
    votes.add(block, "honest", bytes(1, 2, 3));
    expect(votes.vote("0-2")).toEqual({ verdict: "disagreed", actors: ["liar", "honest"] });
    votes.deal({ third: [0, 1] });
    votes.add(block, "third", bytes(1, 2, 3));
    expect(votes.vote("0-2")).toMatchObject({ verdict: "accepted", by: ["honest", "third"], odd: ["liar"] });
  });

  it("three copies that all differ have no majority", () => {
    const votes = new GradientVotes(4);
    votes.deal({ a: [0, 1], b: [0, 1], c: [0, 1] });
    for (const [actor, x] of [
      ["a", 1],
      ["b", 2],
      ["c", 3],
    ] as const)
      votes.add(block, actor, bytes(x));
    expect(votes.vote("0-2")).toEqual({ verdict: "disagreed", actors: ["a", "b", "c"] });
  });

  it("counts only copies from actors dealt that block, and only an actor's first copy", () => {
    const votes = new GradientVotes(4);
    votes.deal({ a: [0, 1, 2, 3], b: [0, 1] });
    // a holds all four groups: it sends block [0, 4), never [0, 2), so its [0, 2) copy is no vote.
    votes.add(block, "a", bytes(5));
    votes.add(block, "stranger", bytes(5));
    expect(votes.add(block, "b", bytes(5))).toBe(true);
    expect(votes.add(block, "b", bytes(6))).toBe(false);
    expect(votes.vote("0-2")).toEqual({ verdict: "waiting" });
    // A copy that arrived before its step order counts once the order is known.
    votes.deal({ stranger: [0, 1] });
    expect(votes.vote("0-2")).toMatchObject({ verdict: "accepted", by: ["stranger", "b"] });
  });

  it("pairs actors across hosts first, and says when a pair shares a host", () => {
    expect(
      pairActors([
        { id: "c0", host: "h1" },
        { id: "c1", host: "h1" },
        { id: "c2", host: "h2" },
        { id: "c3", host: "h2" },
      ]),
    ).toEqual({
      pairs: [
        ["c0", "c2"],
        ["c1", "c3"],
      ],
      sameHost: false,
    });
    expect(
      pairActors([
        { id: "c0", host: "h1" },
        { id: "c1", host: "h1" },
        { id: "c2", host: "h1" },
        { id: "c3", host: "h2" },
      ]),
    ).toEqual({
      pairs: [
        ["c0", "c3"],
        ["c1", "c2"],
      ],
      sameHost: true,
    });
    // One host: pairs of different actors; an odd actor out is the spare.
    expect(pairActors(["c0", "c1", "c2"].map((id) => ({ id, host: "h" })))).toEqual({ pairs: [["c0", "c1"]], sameHost: true });
    expect(pairActors([{ id: "c0", host: "h" }])).toEqual({ pairs: [], sameHost: false });
  });

  it("leaves verify out of the config hash: a run resumes with verification turned on or off", () => {
    const config = (cluster: Record<string, unknown>) => parseRunConfig({ model: { preset: "tiny" }, data: { shards: "prepared" }, cluster });
    expect(configHash(config({ verify: 2 }))).toBe(configHash(config({})));
  });
});
