// The tensor codec: how tensors and messages travel between actors over NATS.
//
// Owns: the msgpack encoding of messages, the tensor frame (dtype, shape, raw bytes),
// chunking under the server's max_payload, and reassembly with checksums.
// Never: applies what it decodes. A message that fails any check is rejected with a reason
// and the caller logs it; nothing half-decoded reaches an actor.
//
// Tensor bytes travel as one msgpack `bin` per chunk holding the raw little-endian bytes of
// the typed array: no per-element encoding. msgpackr with default options would pack a
// Float32Array element by element (and decode bins as Buffer), so the codec only ever hands
// it Uint8Array views and rebuilds typed arrays itself.
import { Packr } from "msgpackr";
import { crc32 } from "node:zlib";
import type { z } from "zod";

export const dtypes = { f32: 4, bf16: 2, f16: 2, i32: 4, i64: 8, u8: 1 } as const;
export type TensorDType = keyof typeof dtypes;

export interface Tensor {
  dtype: TensorDType;
  shape: number[];
  /** Raw little-endian bytes; byteLength = product(shape) * bytes per element. */
  bytes: Uint8Array;
}

/** A rejected message: `reason` is a sentence for the log. */
export class CodecError extends Error {
  override readonly name = "CodecError";
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

/** Plain messages (control, heartbeats, metrics): msgpack of a JSON-like object. */
export function encodeMessage(value: unknown): Uint8Array {
  return packr.pack(value);
}

export function decodeMessage<T = unknown>(data: Uint8Array, what = "message"): T {
  try {
    return packr.unpack(data) as T;
  } catch (err) {
    throw new CodecError(`${what} is not valid msgpack (${data.byteLength} bytes): ${(err as Error).message}`);
  }
}

/** Decodes a message and checks it against its schema; the CodecError names the first wrong field. */
export function decodeChecked<S extends z.ZodType>(schema: S, data: Uint8Array, what = "message"): z.infer<S> {
  return checkMessage(schema, decodeMessage(data, what), what);
}

/** Checks an already decoded value (a tensor's meta, say) against its schema. */
export function checkMessage<S extends z.ZodType>(schema: S, value: unknown, what = "message"): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  throw new CodecError(`${what} has the wrong shape: ${issue.path.length ? issue.path.join(".") : "the body"}: ${issue.message}`);
}

// ---- tensors --------------------------------------------------------------------------

type TypedArray = Float32Array | Int32Array | Uint8Array | BigInt64Array | Uint16Array;
type View = new (buffer: ArrayBufferLike, byteOffset: number, length: number) => TypedArray;
/** The typed array each dtype is read into (16-bit floats stay raw bits). */
const views: Record<TensorDType, View> = { f32: Float32Array, i32: Int32Array, i64: BigInt64Array, bf16: Uint16Array, f16: Uint16Array, u8: Uint8Array };

export function tensorFrom(array: TypedArray, shape: number[], dtype?: TensorDType): Tensor {
  const inferred = dtype ?? (Object.keys(views) as TensorDType[]).find((d) => array instanceof views[d]) ?? "u8";
  const tensor = { dtype: inferred, shape, bytes: new Uint8Array(array.buffer, array.byteOffset, array.byteLength) };
  checkTensorShape({ ...tensor, byteLength: tensor.bytes.byteLength });
  return tensor;
}

/** A typed view of the tensor's bytes (copied when they are not aligned for the type). */
export function tensorData(t: Tensor): TypedArray {
  const width = dtypes[t.dtype];
  // new Uint8Array(x) copies into a fresh buffer; Buffer#slice would only make another view.
  const bytes = t.bytes.byteOffset % width === 0 ? t.bytes : new Uint8Array(t.bytes);
  return t.dtype === "u8" ? bytes : new views[t.dtype](bytes.buffer, bytes.byteOffset, bytes.byteLength / width);
}

export function tensorElements(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function checkTensorShape(t: { dtype: string; shape: unknown; byteLength: number }): void {
  if (!(t.dtype in dtypes)) throw new CodecError(`unknown dtype "${t.dtype}"`);
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new CodecError(`bad shape ${JSON.stringify(t.shape)}`);
  const expected = tensorElements(t.shape) * dtypes[t.dtype as TensorDType];
  if (expected !== t.byteLength) throw new CodecError(`shape ${JSON.stringify(t.shape)} of ${t.dtype} needs ${expected} bytes but ${t.byteLength} arrived`);
}

// ---- chunking -------------------------------------------------------------------------

/** One NATS message of a chunked tensor. `meta` travels with chunk 0 only. */
interface Chunk {
  /** message id, unique per sender */
  id: string;
  seq: number;
  count: number;
  /** bytes in every chunk but the last: chunk `seq` starts at seq * stride */
  stride: number;
  dtype: TensorDType;
  shape: number[];
  byteLength: number;
  /** crc32 of this chunk's bytes (and of its meta bytes, on chunk 0) */
  chunkCrc: number;
  /** msgpack of the meta, chunk 0 only: covered by chunkCrc like the tensor bytes */
  meta?: Uint8Array;
  bytes: Uint8Array;
}

/** Room for a chunk's msgpack envelope: its fixed fields and a shape of up to 100 dims. */
const envelopeBytes = 1024;

let nextMessageId = 0;
const senderTag = `${process.pid.toString(36)}.${Math.floor(Math.random() * 2 ** 32).toString(36)}`;

/**
 * Splits a tensor (and its meta, e.g. step and group) into NATS payloads of at most
 * maxPayload bytes each.
 */
export function encodeTensorChunks(tensor: Tensor, meta: unknown, maxPayload: number): Uint8Array[] {
  checkTensorShape({ ...tensor, byteLength: tensor.bytes.byteLength });
  const metaBytes = meta === undefined ? undefined : encodeMessage(meta);
  const room = maxPayload - envelopeBytes - (metaBytes?.byteLength ?? 0);
  if (room < 256) throw new CodecError(`max_payload ${maxPayload} leaves no room for tensor bytes`);
  const total = tensor.bytes.byteLength;
  const count = Math.max(1, Math.ceil(total / room));
  const id = `${senderTag}.${nextMessageId++}`;
  const out: Uint8Array[] = [];
  for (let seq = 0; seq < count; seq++) {
    const bytes = tensor.bytes.subarray(seq * room, Math.min(total, (seq + 1) * room));
    const withMeta = seq === 0 ? metaBytes : undefined;
    const chunkCrc = chunkChecksum(bytes, withMeta);
    const envelope: Omit<Chunk, "bytes"> = {
      id,
      seq,
      count,
      stride: room,
      dtype: tensor.dtype,
      shape: tensor.shape,
      byteLength: total,
      chunkCrc,
      ...(withMeta ? { meta: withMeta } : {}),
    };
    out.push(packChunk(envelope, bytes));
  }
  return out;
}

/**
 * msgpack of `{ ...envelope, bytes }`, written by hand around one copy of the bytes:
 * msgpackr reallocates its buffer for every large message, which costs more than the
 * network. The envelope is packed by msgpackr as a map; we add one key, "bytes", as bin32.
 */
function packChunk(envelope: Omit<Chunk, "bytes">, bytes: Uint8Array): Uint8Array {
  const head = packr.pack(envelope);
  const keys = Object.keys(envelope).length;
  // msgpackr writes maps as map16: 0xde, then the key count as a big-endian u16.
  if (head[0] !== 0xde || ((head[1]! << 8) | head[2]!) !== keys) throw new Error("tensor chunk envelope must pack as a msgpack map16");
  const frame = Buffer.allocUnsafe(head.byteLength + 6 + 5 + bytes.byteLength);
  frame.set(head, 0);
  frame.writeUInt16BE(keys + 1, 1);
  let at = head.byteLength;
  frame[at++] = 0xa5; // fixstr of length 5: "bytes"
  at += frame.write("bytes", at, "latin1");
  frame[at++] = 0xc6; // bin32
  frame.writeUInt32BE(bytes.byteLength, at);
  frame.set(bytes, at + 4);
  return frame;
}

/** crc32 over a chunk's meta (if any) then its bytes. */
function chunkChecksum(bytes: Uint8Array, meta: Uint8Array | undefined): number {
  const seed = meta ? crc32(meta) : 0;
  // zlib.crc32 of an empty buffer ignores the running value; keep it explicitly.
  return bytes.byteLength > 0 ? crc32(bytes, seed) : seed;
}

export interface Reassembled<M> {
  tensor: Tensor;
  meta: M;
}

interface Pending {
  chunk0: Omit<Chunk, "bytes" | "seq">;
  meta: unknown;
  buffer: Uint8Array;
  seen: Uint8Array;
  received: number;
  startedAt: number;
}

/**
 * Puts chunked tensors back together. `accept` returns the whole tensor when its last chunk
 * arrives, undefined while it waits for more, and throws CodecError for anything malformed,
 * truncated, oversized, mismatched or corrupted (that message is then dropped whole).
 */
export interface AssemblerLimits {
  maxBytes: number;
  /** A message still incomplete after this long is forgotten (default 60 s). */
  timeoutMs?: number;
  /** Messages that may wait for chunks at once (default 64); a new one beyond that is rejected. */
  maxPending?: number;
  /**
   * Why a tensor of this dtype and shape cannot be meant for this receiver (undefined when
   * it can): asked on a message's first chunk, before its buffer is allocated, so a frame
   * that only claims a huge tensor costs nothing.
   */
  misfit?: (dtype: TensorDType, shape: number[]) => string | undefined;
}

export class TensorAssembler<M = unknown> {
  private pending = new Map<string, Pending>();

  constructor(private readonly limits: AssemblerLimits = { maxBytes: 4 * 1024 ** 3 }) {}

  accept(data: Uint8Array): Reassembled<M> | undefined {
    const chunk = decodeMessage<Chunk>(data, "tensor chunk");
    this.checkChunk(chunk);
    let entry = this.pending.get(chunk.id);
    if (!entry) {
      const misfit = this.limits.misfit?.(chunk.dtype, chunk.shape);
      if (misfit) throw new CodecError(`message ${chunk.id} claims a tensor of ${chunk.dtype}${JSON.stringify(chunk.shape)}, which ${misfit}`);
      this.dropStale();
      const maxPending = this.limits.maxPending ?? 64;
      if (this.pending.size >= maxPending) throw new CodecError(`message ${chunk.id} is dropped: ${maxPending} tensors are already waiting for chunks`);
      entry = {
        chunk0: { id: chunk.id, count: chunk.count, stride: chunk.stride, dtype: chunk.dtype, shape: chunk.shape, byteLength: chunk.byteLength, chunkCrc: 0 },
        meta: undefined,
        // Every byte is overwritten by a checked chunk before the tensor is handed out.
        buffer: Buffer.allocUnsafe(chunk.byteLength),
        seen: new Uint8Array(chunk.count),
        received: 0,
        startedAt: Date.now(),
      };
      this.pending.set(chunk.id, entry);
    }
    const first = entry.chunk0;
    if (
      chunk.count !== first.count ||
      chunk.stride !== first.stride ||
      chunk.byteLength !== first.byteLength ||
      chunk.dtype !== first.dtype ||
      JSON.stringify(chunk.shape) !== JSON.stringify(first.shape)
    ) {
      this.pending.delete(chunk.id);
      throw new CodecError(`chunk ${chunk.seq} of message ${chunk.id} disagrees with its earlier chunks about the tensor`);
    }
    if (entry.seen[chunk.seq]) return undefined; // a duplicate chunk: already have it
    const offset = chunk.seq * chunk.stride;
    const expected = Math.min(chunk.stride, chunk.byteLength - offset);
    if (chunk.bytes.byteLength !== expected || (chunk.seq === chunk.count - 1) !== (offset + expected === chunk.byteLength)) {
      this.pending.delete(chunk.id);
      throw new CodecError(
        `chunk ${chunk.seq} of message ${chunk.id} has ${chunk.bytes.byteLength} bytes where the ${chunk.byteLength}-byte tensor cut in ${chunk.count} chunks needs ${expected}`,
      );
    }
    const metaBytes = chunk.meta instanceof Uint8Array ? chunk.meta : undefined;
    if (chunkChecksum(chunk.bytes, metaBytes) !== chunk.chunkCrc) {
      this.pending.delete(chunk.id);
      throw new CodecError(`chunk ${chunk.seq} of message ${chunk.id} fails its checksum (corrupted in transit)`);
    }
    entry.buffer.set(chunk.bytes, offset);
    entry.seen[chunk.seq] = 1;
    entry.received++;
    if (metaBytes) entry.meta = decodeMessage(metaBytes, `meta of message ${chunk.id}`);
    if (entry.received < chunk.count) return undefined;
    // Each chunk's length was checked against its place, so all `count` of them tile the tensor exactly.
    this.pending.delete(chunk.id);
    return { tensor: { dtype: first.dtype, shape: first.shape, bytes: entry.buffer }, meta: entry.meta as M };
  }

  /** Messages still waiting for chunks. */
  get waiting(): number {
    return this.pending.size;
  }

  private checkChunk(c: Chunk): void {
    if (typeof c !== "object" || c === null) throw new CodecError("tensor chunk is not a map");
    if (typeof c.id !== "string") throw new CodecError("tensor chunk has no message id");
    if (!Number.isSafeInteger(c.count) || c.count < 1 || !Number.isSafeInteger(c.seq) || c.seq < 0 || c.seq >= c.count)
      throw new CodecError(`tensor chunk ${c.seq} of ${c.count} is out of range`);
    if (!(c.bytes instanceof Uint8Array)) throw new CodecError("tensor chunk carries no bytes");
    if (!Number.isSafeInteger(c.byteLength) || c.byteLength < 0) throw new CodecError("tensor chunk has a bad byte length");
    // The chunk count follows from the length and stride: `seen` is never sized by a claim alone.
    if (!Number.isSafeInteger(c.stride) || c.stride < 1 || c.count !== Math.max(1, Math.ceil(c.byteLength / c.stride)))
      throw new CodecError(`tensor chunk claims ${c.count} chunks of ${c.stride} bytes for ${c.byteLength} bytes`);
    if (c.byteLength > this.limits.maxBytes) throw new CodecError(`tensor of ${c.byteLength} bytes is larger than the ${this.limits.maxBytes}-byte limit`);
    checkTensorShape({ dtype: c.dtype, shape: c.shape, byteLength: c.byteLength });
  }

  private dropStale(): void {
    const timeout = this.limits.timeoutMs ?? 60_000;
    const now = Date.now();
    for (const [id, entry] of this.pending) if (now - entry.startedAt > timeout) this.pending.delete(id);
  }
}
