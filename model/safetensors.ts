// safetensors, written and read by its specification: an 8-byte little-endian header
// length, a JSON header naming each tensor's dtype, shape and [begin, end) byte offsets in
// the data that follows, and an optional "__metadata__" map of strings.
//
// Written by hand rather than with a library: the format is 20 lines to write, and the npm
// packages for it are unmaintained (the one named "safetensors" is a 0.0.1 placeholder).
// Owns: the byte format. Never: decides file names or writes anything half: callers write
// into a temporary folder and rename it whole.
import { closeSync, fsyncSync, openSync, readFileSync, writeSync } from "node:fs";
import { UserError } from "../runtime/errors.js";

export interface NamedTensor {
  name: string;
  dtype: "F32" | "I32";
  shape: number[];
  data: Float32Array | Int32Array;
}

/** Writes the file and fsyncs it. Tensor data is laid out in the order given. */
export function writeSafetensors(file: string, tensors: NamedTensor[], metadata: Record<string, string> = {}): void {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  // The data should start 8-byte aligned; pad the header with spaces, as the spec allows.
  json += " ".repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const fd = openSync(file, "w");
  try {
    writeSync(fd, head);
    writeSync(fd, Buffer.from(json, "utf8"));
    for (const t of tensors) writeSync(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export interface SafetensorsFile {
  metadata: Record<string, string>;
  tensors: Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }>;
}

/** Reads and checks a whole file; every problem is a UserError naming the file. */
export function readSafetensors(file: string): SafetensorsFile {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new UserError(`cannot read ${file}: ${(err as Error).message}`);
  }
  if (bytes.byteLength < 8) throw new UserError(`${file} is truncated: shorter than a safetensors header.`);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  if (8 + headerLength > bytes.byteLength) throw new UserError(`${file} is truncated: its header claims ${headerLength} bytes.`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString("utf8"));
  } catch {
    throw new UserError(`${file} has a corrupted safetensors header.`);
  }
  const data = bytes.subarray(8 + headerLength);
  const tensors = new Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }>();
  for (const [name, value] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const t = value as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const [begin, end] = t.data_offsets ?? [];
    const width = t.dtype === "F32" || t.dtype === "I32" ? 4 : t.dtype === "F16" || t.dtype === "BF16" ? 2 : t.dtype === "I64" || t.dtype === "F64" ? 8 : 1;
    if (!(Number.isInteger(begin) && Number.isInteger(end) && begin! <= end! && end! <= data.byteLength))
      throw new UserError(`${file}: tensor ${name} points outside the file (truncated or corrupted).`);
    if (end! - begin! !== t.shape.reduce((a, b) => a * b, 1) * width)
      throw new UserError(`${file}: tensor ${name} has ${end! - begin!} bytes for shape ${JSON.stringify(t.shape)}.`);
    tensors.set(name, { dtype: t.dtype, shape: t.shape, bytes: data.subarray(begin!, end!) });
  }
  return { metadata: (header.__metadata__ as Record<string, string>) ?? {}, tensors };
}

/** A tensor's bytes as Float32Array (copied, so alignment never matters). */
export function f32(file: SafetensorsFile, name: string, where: string): Float32Array {
  const t = file.tensors.get(name);
  if (t?.dtype !== "F32") throw new UserError(`${where} has no F32 tensor "${name}".`);
  return new Float32Array(new Uint8Array(t.bytes).buffer); // a copy with its own, aligned buffer
}
