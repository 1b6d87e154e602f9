// Entity-level scores of token classification, by hand: conlleval's chunk rule on BIO tags,
// precision, recall and F1 over exact spans and types; and the windows a long row is cut
// into, where every word is scored exactly once, in the window that gives it the most context.
import { describe, expect, it } from "vitest";
import { entitiesOf, entityScores, wordWindows } from "../../model/tasks.js";

describe("entities of a tag sequence (conlleval's rule)", () => {
  it("B starts an entity, I continues one of its type, O ends it", () => {
    expect(entitiesOf(["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"])).toEqual([
      { type: "PER", start: 0, end: 2 },
      { type: "LOC", start: 3, end: 4 },
      { type: "LOC", start: 4, end: 6 },
    ]);
  });

  it("an I after O or after another type starts an entity; a tag without B-/I- is outside", () => {
    expect(entitiesOf(["I-ORG", "I-ORG", "I-PER", "O", "I-LOC", "MISC", "B-PER"])).toEqual([
      { type: "ORG", start: 0, end: 2 },
      { type: "PER", start: 2, end: 3 },
      { type: "LOC", start: 4, end: 5 },
      { type: "PER", start: 6, end: 7 },
    ]);
    expect(entitiesOf(["O", "O"])).toEqual([]);
  });
});

describe("entity precision, recall and F1", () => {
  it("counts an entity only when its span and type are exactly right", () => {
    const gold = [
      ["B-PER", "I-PER", "O", "B-LOC"], // Aygün Səmədova ... Şəki: PER(0,2), LOC(3,4)
      ["B-ORG", "I-ORG", "I-ORG", "O"], // ORG(0,3)
    ];
    const predicted = [
      ["B-PER", "I-PER", "O", "B-ORG"], // PER right; ORG(3,4) has the wrong type
      ["B-ORG", "I-ORG", "O", "B-PER"], // ORG(0,2) is too short; PER(3,4) is not in the gold
    ];
    // 4 predicted, 3 gold, 1 correct: precision 1/4, recall 1/3, F1 = 2·(1/4)(1/3)/(1/4+1/3) = 2/7
    const s = entityScores(gold, predicted);
    expect({ gold: s.gold, predicted: s.predicted, correct: s.correct }).toEqual({ gold: 3, predicted: 4, correct: 1 });
    expect(s.precision).toBeCloseTo(1 / 4, 12);
    expect(s.recall).toBeCloseTo(1 / 3, 12);
    expect(s.f1).toBeCloseTo(2 / 7, 12);
  });

  it("an I-X continuing a B-X is the same entity as B-X I-X; I-X after O is a new one", () => {
    const s = entityScores([["B-LOC", "I-LOC", "O"]], [["I-LOC", "I-LOC", "O"]]);
    expect(s.f1).toBe(1);
    const split = entityScores([["B-LOC", "I-LOC"]], [["B-LOC", "B-LOC"]]);
    expect({ predicted: split.predicted, correct: split.correct, f1: split.f1 }).toEqual({ predicted: 2, correct: 0, f1: 0 });
  });

  it("is 0, not NaN, when nothing is predicted or nothing is gold", () => {
    expect(entityScores([["B-PER", "O"]], [["O", "O"]])).toEqual({ precision: 0, recall: 0, f1: 0, gold: 1, predicted: 0, correct: 0 });
    expect(entityScores([["O"]], [["B-PER"]])).toEqual({ precision: 0, recall: 0, f1: 0, gold: 0, predicted: 1, correct: 0 });
  });
});

describe("windows of a row longer than the window", () => {
  it("scores every word exactly once, in the window where it has the most context", () => {
    // 40 words of 1 to 3 pieces, windows of 10 pieces sharing up to 4
    const lengths = Array.from({ length: 40 }, (_, i) => 1 + ((i * 7) % 3));
    const windows = wordWindows(lengths, 10, 4);
    expect(windows.length).toBeGreaterThan(1);
    expect(windows[0]!.start).toBe(0);
    expect(windows.at(-1)!.end).toBe(40);
    for (const [i, w] of windows.entries()) {
      expect(lengths.slice(w.start, w.end).reduce((s, l) => s + l, 0)).toBeLessThanOrEqual(10);
      if (i > 0) {
        const prev = windows[i - 1]!;
        expect(w.start).toBeGreaterThan(prev.start);
        expect(w.start).toBeLessThanOrEqual(prev.end); // no word falls between two windows
        expect(lengths.slice(w.start, prev.end).reduce((s, l) => s + l, 0)).toBeLessThanOrEqual(4);
      }
    }
    const scored = windows.flatMap((w) => w.scores).sort((a, b) => a - b);
    expect(scored).toEqual(Array.from({ length: 40 }, (_, i) => i));
    for (const w of windows) for (const word of w.scores) expect(word >= w.start && word < w.end).toBe(true);
  });

  it("picks the window with more context by hand; a short row is one window", () => {
    // 6 one-piece words, windows of 4 sharing 2: [0,4) and [2,6). Word 2 has before/after 2/1
    // in the first window and 0/3 in the second: the first; word 3: 3/0 against 1/2: the second.
    const windows = wordWindows([1, 1, 1, 1, 1, 1], 4, 2);
    expect(windows).toEqual([
      { start: 0, end: 4, scores: [0, 1, 2] },
      { start: 2, end: 6, scores: [3, 4, 5] },
    ]);
    expect(wordWindows([2, 3], 10, 2)).toEqual([{ start: 0, end: 2, scores: [0, 1] }]);
    // a word longer than the window is cut to it and still scored
    expect(wordWindows([1, 12, 1], 4, 1).flatMap((w) => w.scores)).toEqual([0, 1, 2]);
  });
});
