// The memory of the CPU backends: one growable arena, and the Kernels memory operations over it.
//
// Owns: the Arena (a float view and an int view of the same memory, replaced on growth),
// the JS-array arena of the reference, and the allocator both backends share: a Buf is an
// element index into the arena, bump-allocated and reused by exact size, so the same
// sequence of allocations lands at the same addresses every run.
// Never: computes a kernel; knows which backend owns the memory.
import type { Buf, Kernels } from "./kernels.js";

/**
 * Where a CPU backend keeps its buffers: a growable JS array for the reference, the module's
 * memory for WebAssembly. Integers (ids, labels, masks) live in the same slots: as int32
 * in f32 mode, as exact doubles in f64 mode (i32 is then the f32 array itself).
 */
export interface Arena {
  f32: Float32Array | Float64Array;
  i32: Int32Array | Float64Array;
  /** Makes room for at least `elements`; the views above are replaced. */
  grow(elements: number): void;
}

export function jsArena(precision: "f32" | "f64"): Arena {
  const make = (n: number) => (precision === "f64" ? new Float64Array(n) : new Float32Array(n));
  const ints = (f: Float32Array | Float64Array) => (f instanceof Float64Array ? f : new Int32Array(f.buffer));
  const first = make(1 << 16);
  const arena: Arena = {
    f32: first,
    i32: ints(first),
    grow(elements) {
      if (elements <= arena.f32.length) return;
      let size = arena.f32.length;
      while (size < elements) size *= 2;
      const next = make(size);
      next.set(arena.f32);
      arena.f32 = next;
      arena.i32 = ints(next);
    },
  };
  return arena;
}

/**
 * alloc, free, view, upload, download, fill and copy over `arena`. Buffers start at
 * `firstElement` (the WebAssembly module's own data sits below it; address 0 is never
 * handed out) and every size is rounded up to a multiple of `align` elements.
 */
export function memoryOps(
  arena: Arena,
  { firstElement = 1, align = 1 } = {},
): Pick<Kernels, "alloc" | "free" | "view" | "upload" | "download" | "fill" | "copy"> {
  let top = Math.max(1, firstElement);
  const sizes = new Map<number, number>();
  const freeBySize = new Map<number, number[]>();
  return {
    alloc(count) {
      count = Math.max(align, Math.ceil(count / align) * align);
      const reuse = freeBySize.get(count)?.pop();
      const addr = reuse ?? top;
      if (reuse === undefined) {
        if (top + count > arena.f32.length) arena.grow(top + count);
        top += count;
      }
      arena.f32.fill(0, addr, addr + count);
      sizes.set(addr, count);
      return addr as Buf;
    },
    free(buf) {
      const n = sizes.get(buf);
      if (n === undefined) throw new Error(`free of a buffer that is not allocated (${buf})`);
      sizes.delete(buf);
      const list = freeBySize.get(n) ?? [];
      list.push(buf);
      freeBySize.set(n, list);
    },
    view: (buf, offset) => (buf + offset) as Buf,
    upload(dst, src) {
      const ints = arena.i32;
      if (src instanceof Int32Array) for (let i = 0; i < src.length; i++) ints[dst + i] = src[i]!;
      else arena.f32.set(src, dst);
    },
    download(src, dst) {
      const from = dst instanceof Int32Array ? arena.i32 : arena.f32;
      for (let i = 0; i < dst.length; i++) dst[i] = from[src + i]!;
    },
    fill: (x, n, value) => void arena.f32.fill(value, x, x + n),
    copy: (dst, src, n) => void arena.f32.copyWithin(dst, src, src + n),
  };
}
