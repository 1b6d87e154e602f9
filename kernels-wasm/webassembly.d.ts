// The few WebAssembly JS API types the loader uses. TypeScript ships them only in its DOM
// library, which would let browser globals into a Node.js project.
declare namespace WebAssembly {
  class Memory {
    readonly buffer: ArrayBuffer;
    grow(pages: number): number;
  }
  interface Instance {
    readonly exports: Record<string, unknown>;
  }
  function validate(bytes: ArrayBufferView | ArrayBuffer): boolean;
  function instantiate(bytes: ArrayBufferView | ArrayBuffer, imports?: Record<string, Record<string, unknown>>): Promise<{ instance: Instance }>;
}
