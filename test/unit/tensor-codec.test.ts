// The tensor codec: random shapes and dtypes round-trip byte for byte through chunking;
// any corruption, truncation or mismatch is rejected, never applied.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CodecError,
  decodeMessage,
  dtypes,
  encodeMessage,
  encodeTensorChunks,
  tensorData,
  tensorFrom,
  TensorAssembler,
  type Reassembled,
  type Tensor,
  type TensorDType,
} from "../../runtime/codec.js";

const dtypeArb = fc.constantFrom(...(Object.keys(dtypes) as TensorDType[]));
const tensorArb = fc
  .record({ dtype: dtypeArb, shape: fc.array(fc.integer({ min: 0, max: 37 }), { minLength: 0, maxLength: 4 }), seed: fc.integer() })
  .map(({ dtype, shape, seed }): Tensor => {
    const n = shape.reduce((a, b) => a * b, 1) * dtypes[dtype];
    const bytes = new Uint8Array(n);
    let x = seed >>> 0 || 1;
    for (let i = 0; i < n; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      bytes[i] = x >>> 24;
    }
    return { dtype, shape, bytes };
  });

function reassemble(chunks: Uint8Array[]) {
  const assembler = new TensorAssembler();
  let out: Reassembled<unknown> | undefined;
  for (const c of chunks) out = assembler.accept(c) ?? out;
  return out;
}

describe("tensor codec", () => {
  it("round-trips random tensors through chunks of any size", () => {
    fc.assert(
      fc.property(tensorArb, fc.integer({ min: 2 * 1024, max: 64 * 1024 }), (tensor, maxPayload) => {
        const chunks = encodeTensorChunks(tensor, { step: 3, group: 1 }, maxPayload);
        for (const c of chunks) expect(c.byteLength).toBeLessThanOrEqual(maxPayload);
        const out = reassemble(chunks.reverse()); // order of arrival must not matter
        expect(out).toBeDefined();
        expect(out!.meta).toEqual({ step: 3, group: 1 });
        expect(out!.tensor.dtype).toBe(tensor.dtype);
        expect(out!.tensor.shape).toEqual(tensor.shape);
        expect(Buffer.from(out!.tensor.bytes).equals(Buffer.from(tensor.bytes))).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it("keeps Float32Array bytes exact (no element-wise msgpack of typed arrays)", () => {
    const values = new Float32Array([1.5, -0, NaN, Infinity, 3.4028234663852886e38, 1e-45]);
    const [chunk] = encodeTensorChunks(tensorFrom(values, [2, 3]), undefined, 64 * 1024);
    const out = new TensorAssembler().accept(chunk!)!;
    const back = tensorData(out.tensor) as Float32Array;
    expect(back).toBeInstanceOf(Float32Array);
    expect(Buffer.from(back.buffer, back.byteOffset, back.byteLength).equals(Buffer.from(values.buffer))).toBe(true);
  });

  it("rejects any single corrupted byte in any chunk", () => {
    fc.assert(
      fc.property(
        tensorArb.filter((t) => t.bytes.byteLength > 0),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (tensor, where, flip) => {
          const chunks = encodeTensorChunks(tensor, { step: 1 }, 20 * 1024);
          const which = where % chunks.length;
          const bad = chunks[which]!.slice();
          // Corrupt one of the chunk's last bytes: its tensor bytes and, on chunk 0, its meta.
          const payloadByte = bad.byteLength - 1 - (where % Math.min(bad.byteLength, 12));
          bad[payloadByte]! ^= flip;
          chunks[which] = bad;
          let error: unknown;
          let result: Reassembled<unknown> | undefined;
          try {
            result = reassemble(chunks);
          } catch (err) {
            error = err;
          }
          expect(result).toBeUndefined();
          expect(error).toBeInstanceOf(CodecError);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("rejects truncated, mismatched, oversized and garbage messages with a reason", () => {
    const t = tensorFrom(new Float32Array(10_000), [100, 100]);
    const chunks = encodeTensorChunks(t, undefined, 20 * 1024);
    expect(() => new TensorAssembler().accept(chunks[0]!.subarray(0, chunks[0]!.byteLength - 100))).toThrow(CodecError);
    expect(() => new TensorAssembler().accept(new Uint8Array([0xc1, 0xff, 0x00]))).toThrow(/not valid msgpack/);
    expect(() => new TensorAssembler({ maxBytes: 1000 }).accept(chunks[0]!)).toThrow(/larger than the 1000-byte limit/);
    const lying = encodeMessage({ ...decodeMessage<Record<string, unknown>>(chunks[0]!), shape: [7, 7] });
    expect(() => new TensorAssembler().accept(lying)).toThrow(/needs 196 bytes/);
    const other = encodeTensorChunks(tensorFrom(new Float32Array(10_000), [10_000]), undefined, 20 * 1024);
    const mixed = encodeMessage({ ...decodeMessage<Record<string, unknown>>(other[1]!), id: decodeMessage<{ id: string }>(chunks[0]!).id });
    const assembler = new TensorAssembler();
    assembler.accept(chunks[0]!);
    expect(() => assembler.accept(mixed)).toThrow(/disagrees/);
    expect(assembler.waiting).toBe(0);
  });

  it("rejects a frame claiming a tensor its receiver does not expect, before allocating it, and bounds the messages waiting", () => {
    // A valid first chunk of about 1 KiB whose envelope claims a 3.9 GiB f32 tensor.
    const [first] = encodeTensorChunks(tensorFrom(new Float32Array(1000), [1000]), { step: 0 }, 2048);
    const real = decodeMessage<Record<string, unknown>>(first!);
    const claim = (n: number, id: string) => encodeMessage({ ...real, id, shape: [n], byteLength: n * 4, count: Math.ceil((n * 4) / (real.stride as number)) });
    const expecting1000 = () =>
      new TensorAssembler({
        maxBytes: 4 * 1024 ** 3,
        maxPending: 2,
        misfit: (dtype, shape) => (dtype === "f32" && shape[0] === 1000 ? undefined : "is not the 1000 f32 elements this receiver takes"),
      });
    const assembler = expecting1000();
    expect(() => assembler.accept(claim(1_040_000_000, "huge"))).toThrow(/claims a tensor of f32\[1040000000\], which is not the 1000 f32 elements/);
    expect(assembler.waiting).toBe(0);
    // A chunk count that does not follow from the length and stride is refused too.
    expect(() => assembler.accept(encodeMessage({ ...real, id: "many", count: 2 ** 40 }))).toThrow(/claims 1099511627776 chunks of \d+ bytes for 4000 bytes/);
    // At most maxPending messages wait for their chunks; the next is rejected, not buffered.
    assembler.accept(claim(1000, "a"));
    assembler.accept(claim(1000, "b"));
    expect(() => assembler.accept(claim(1000, "c"))).toThrow(/2 tensors are already waiting/);
    expect(assembler.waiting).toBe(2);
  });

  it("ignores a duplicated chunk instead of adding it twice", () => {
    const t = tensorFrom(
      new Int32Array(20_000).map((_, i) => i),
      [20_000],
    );
    const chunks = encodeTensorChunks(t, undefined, 20 * 1024);
    const assembler = new TensorAssembler();
    expect(assembler.accept(chunks[0]!)).toBeUndefined();
    expect(assembler.accept(chunks[0]!)).toBeUndefined();
    let out: Reassembled<unknown> | undefined;
    for (const c of chunks.slice(1)) out = assembler.accept(c) ?? out;
    expect(Array.from(tensorData(out!.tensor) as Int32Array).slice(0, 5)).toEqual([0, 1, 2, 3, 4]);
  });
});
