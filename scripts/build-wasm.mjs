// Compiles the AssemblyScript kernels twice: with 128-bit SIMD, and with relaxed SIMD
// (f32x4.relaxed_madd in the matmul micro-kernel), into kernels-wasm/build/.
// The loader picks the relaxed module where the engine validates it.
import asc from "assemblyscript/asc";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(root, "kernels-wasm", "assembly", "kernels.ts");
const out = join(root, "kernels-wasm", "build");
mkdirSync(out, { recursive: true });

const common = ["--runtime", "stub", "-O3", "--noAssert", "--initialMemory", "2", "--maximumMemory", "65536", "--enable", "simd"];

async function compile(input, output, extra = []) {
  const { error, stderr } = await asc.main([input, "-o", output, ...common, ...extra]);
  if (error) {
    console.error(stderr.toString());
    throw new Error(`build-wasm: ${input} failed to compile: ${error.message}`);
  }
}

await compile(source, join(out, "kernels.wasm"));

// The relaxed build: the same source with madd() fused.
const relaxedSource = join(out, "kernels-relaxed.ts");
const text = readFileSync(source, "utf8");
const plain = "return f32x4.add(f32x4.mul(a, b), c);";
if (!text.includes(plain)) throw new Error("build-wasm: madd() in kernels.ts no longer has the body the relaxed build replaces");
writeFileSync(relaxedSource, text.replace(plain, "return f32x4.relaxed_madd(a, b, c);"));
try {
  await compile(relaxedSource, join(out, "kernels-relaxed.wasm"), ["--enable", "relaxed-simd"]);
} finally {
  rmSync(relaxedSource, { force: true });
}
console.log("build-wasm: kernels-wasm/build/kernels.wasm and kernels-relaxed.wasm");
