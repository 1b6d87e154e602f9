// --backend auto picks CUDA only where the addon loads and a device answers, and otherwise
// runs WebAssembly with a reason naming why; --backend cuda there is one clear error. The
// device is stood in for by the CPU emulation of the addon (a device that answers) and by
// stand-ins that fail the way a machine without a GPU or without the build does.
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { type CudaAddon, cudaAddonPath, loadCudaAddon } from "../../kernels-cuda/index.js";
import { createBackend } from "../../model/backend.js";
import { UserError } from "../../runtime/errors.js";
import { hasCompiler } from "../helpers/cuda-emulation.js";

/** The emulated addon with deviceInfo replaced: what a machine without a GPU answers. */
const noDevice = (): CudaAddon => {
  if (!existsSync(cudaAddonPath("emulated")))
    return { deviceInfo: () => ({ count: 0, error: "no CUDA-capable device is detected", emulated: false }) } as CudaAddon;
  return { ...loadCudaAddon("emulated"), deviceInfo: () => ({ count: 0, error: "no CUDA-capable device is detected", emulated: false }) };
};
const notBuilt = (): CudaAddon => {
  throw new Error("the CUDA addon is not built (kernels-cuda/build/Release/aze_cuda.node is missing: nvcc was not found when `npm run build` ran)");
};

describe("backend choice", () => {
  it("auto falls back to WebAssembly with the reason: no device answered", async () => {
    const { kernels, reason } = await createBackend("auto", { loadCuda: noDevice });
    expect(kernels.name).toMatch(/^wasm/);
    expect(reason).toMatch(/^WebAssembly (relaxed )?SIMD: no CUDA device: cudaGetDeviceCount said no CUDA-capable device is detected$/);
  });

  it("auto falls back to WebAssembly with the reason: the addon is not built", async () => {
    const { kernels, reason } = await createBackend("auto", { loadCuda: notBuilt });
    expect(kernels.name).toMatch(/^wasm/);
    expect(reason).toMatch(/: the CUDA addon is not built .*nvcc was not found/);
  });

  it("cuda where no device answers is one clear error line", async () => {
    await expect(createBackend("cuda", { loadCuda: noDevice })).rejects.toThrow(
      /^--backend cuda: no CUDA device: cudaGetDeviceCount said no CUDA-capable device is detected$/,
    );
    const err = await createBackend("cuda", { loadCuda: notBuilt }).catch((e: Error) => e);
    expect(String((err as Error).message).split("\n")).toHaveLength(1);
    // A UserError: the CLI prints it as that one line, without a stack trace.
    expect(err).toBeInstanceOf(UserError);
  });

  it("on this machine, auto says why it does not use CUDA (or uses it, where a GPU answers)", async () => {
    const { kernels, reason } = await createBackend("auto");
    if (kernels.name === "cuda") expect(reason).toMatch(/^CUDA on /);
    else expect(reason).toMatch(/^WebAssembly (relaxed )?SIMD: (no CUDA device|the CUDA addon (is not built|did not load)|the CUDA device did not start)/);
  });

  it.skipIf(!hasCompiler || !existsSync(cudaAddonPath("emulated")))("picks CUDA where a device answers: the CPU emulation stands in for one", async () => {
    const { kernels, reason } = await createBackend("auto", { loadCuda: () => loadCudaAddon("emulated") });
    expect(kernels.name).toBe("cuda");
    expect(reason).toBe("CUDA on CPU emulation of CUDA; matmul: own tiled GEMM (fp32): no cuBLASLt in the emulation");
  });

  it("refuses a backend it does not know", async () => {
    await expect(createBackend("tpu")).rejects.toThrow(/unknown backend "tpu"/);
  });
});
