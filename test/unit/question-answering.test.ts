// Extractive question answering without a model: SQuAD's normalisation, exact match and token
// F1 by hand; a long context cut into strided windows that each hold the question, with the
// answer's span where a window holds all of it; and the best span read back as context text.
import { describe, expect, it } from "vitest";
import type { loadTokenizer } from "../../corpus/load-tokenizer.js";
import { bestSpan, encodeRow, firstSentence, normalizeAnswer, spanScores, type TaskRow } from "../../model/tasks.js";

describe("SQuAD's scores for Azerbaijani answers", () => {
  it("normalises: Azerbaijani lowercase, punctuation out, whitespace collapsed, no articles to drop", () => {
    expect(normalizeAnswer("  İçərişəhər,  «Qız qalası»! ")).toBe("içərişəhər qız qalası");
    expect(normalizeAnswer("IĞDIR")).toBe("ığdır");
    expect(normalizeAnswer("1139-cu ildə")).toBe("1139cu ildə");
    expect(normalizeAnswer("bir the kitab")).toBe("bir the kitab");
  });

  it("exact match and token F1, each the best over a question's answers", () => {
    // 1: exact after normalisation. 2: "xəzər dənizinin sahilində" against "Xəzər dənizinin":
    // 2 shared tokens, precision 2/3, recall 1, F1 0.8. 3: nothing shared.
    const s = spanScores(["Bakı.", "Xəzər dənizinin sahilində", "Gəncə"], [["bakı"], ["Xəzər", "Xəzər dənizinin"], ["Şəki"]]);
    expect(s.exactMatch).toBeCloseTo(1 / 3, 12);
    expect(s.f1).toBeCloseTo((1 + 0.8 + 0) / 3, 12);
    // a repeated token counts as often as both sides have it
    expect(spanScores(["on on iki"], [["on iki"]]).f1).toBeCloseTo(0.8, 12);
  });

  it("the first-sentence baseline", () => {
    expect(firstSentence("Kür uzundur. Araz da uzundur.")).toBe("Kür uzundur.");
    expect(firstSentence("Nöqtəsiz mətn")).toBe("Nöqtəsiz mətn");
  });
});

// A stand-in tokenizer: one piece per two characters of a word, ids from the characters.
const special = { pad: 0, unk: 1, cls: 2, sep: 3, mask: 4 };
const tokenizer = {
  special,
  encode: (word: string) => {
    const ids = [];
    for (let i = 0; i < word.length; i += 2) ids.push(10 + word.codePointAt(i)!);
    return { ids, wordStarts: ids.map((_, i) => (i === 0 ? 1 : 0)) };
  },
} as unknown as ReturnType<typeof loadTokenizer>;

describe("question-answering windows", () => {
  const context = "Bakı Xəzər dənizinin sahilində yerləşir. Şəhərin ən qədim hissəsi İçərişəhər adlanır. Orada Qız qalası və Şirvanşahlar sarayı var.";
  const answer = "Qız qalası";
  const row: TaskRow = {
    line: 1,
    text: "Nə var?",
    label: "",
    tokens: [],
    tags: [],
    context,
    answers: [{ text: answer, start: context.indexOf(answer) }],
  };
  const windows = encodeRow(row, 0, "question-answering", tokenizer, new Map(), { maxLen: 20, stride: 4 });

  it("cuts a long context into windows, each [CLS] question [SEP] context [SEP], every piece read best in one", () => {
    expect(windows.length).toBeGreaterThan(2);
    const question = tokenizer.encode("Nə").ids.length + tokenizer.encode("var").ids.length + tokenizer.encode("?").ids.length;
    for (const w of windows) {
      expect(w.ids.length).toBeLessThanOrEqual(20);
      expect(w.ids[0]).toBe(special.cls);
      expect(w.ids[question + 1]).toBe(special.sep);
      expect(w.ids.at(-1)).toBe(special.sep);
      expect(w.typeIds.slice(0, question + 2).every((t) => t === 0)).toBe(true);
      expect(w.typeIds.slice(question + 2).every((t) => t === 1)).toBe(true);
    }
    const contextPieces = windows.reduce((s, w) => s + w.span!.maxContext.filter(Boolean).length, 0);
    const allPieces = context.split(/\s+/).length; // at least a piece per word
    expect(contextPieces).toBeGreaterThan(allPieces);
    expect(windows.every((w) => w.span!.words.filter((x) => x >= 0).length > 0)).toBe(true);
  });

  it("labels the answer where a window holds all of it, [CLS] elsewhere, and reads the best span back", () => {
    const holding = windows.filter((w) => w.span!.start > 0);
    expect(holding.length).toBeGreaterThan(0);
    expect(windows.some((w) => w.span!.start === 0 && w.span!.end === 0)).toBe(true);
    // logits that point at the answer's first and last piece in every window that has them: the answer comes back as context text
    const first = holding[0]!.span!.words[holding[0]!.span!.start]!;
    const last = holding[0]!.span!.words[holding[0]!.span!.end]!;
    const logits = windows.map((w) => {
      const { words } = w.span!;
      const start = new Float32Array(w.ids.length);
      const end = new Float32Array(w.ids.length);
      words.forEach((word, p) => {
        if (word === first && words[p - 1] !== first) start[p] = 5;
        if (word === last && words[p + 1] !== last) end[p] = 5;
      });
      return { span: w.span!, start, end };
    });
    expect(bestSpan(context, logits, 30).text).toBe(answer);
    // an answer longer than the longest allowed is not chosen
    expect(bestSpan(context, logits, 1).text).not.toBe(answer);
  });
});
