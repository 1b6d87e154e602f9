// Rotary position embedding's frequencies: the angle per position of each rotated pair.
//
// Owns: the inverse frequencies of a head (θ^(-2i/D) for pair i) and Llama 3's scaling of
// them, computed in float64 exactly as Hugging Face's `_compute_llama3_parameters` does, so
// a checkpoint trained there sees the same rotations here. Every backend reads its angles
// from this one function.
// Never: rotates anything (the kernels do) or knows the layout of the tensors.
import type { RopeScaling } from "./config.js";

/** What the rotary kernels need: the base θ (`rope_theta`) and, optionally, Llama 3's scaling. */
export interface RopeSpec {
  theta: number;
  scaling?: RopeScaling;
}

/**
 * The D/2 inverse frequencies of a head of size D: pair i (dimensions i and i + D/2) turns
 * by position · inv[i]. With scaling, a wavelength 2π/inv above originalMaxPositions /
 * lowFreqFactor is stretched `factor` times (inv / factor), one below originalMaxPositions /
 * highFreqFactor is kept, and inv between the two is interpolated linearly in
 * originalMaxPositions / wavelength from inv / factor to inv.
 */
export function ropeInverseFrequencies(d: number, { theta, scaling }: RopeSpec): Float64Array {
  const half = d / 2;
  const inv = Float64Array.from({ length: half }, (_, i) => Math.pow(theta, (-2 * i) / d));
  if (!scaling) return inv;
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions: original } = scaling;
  const lowFreqWavelength = original / lowFreqFactor;
  const highFreqWavelength = original / highFreqFactor;
  return inv.map((f) => {
    const wavelength = (2 * Math.PI) / f;
    if (wavelength < highFreqWavelength) return f;
    if (wavelength > lowFreqWavelength) return f / factor;
    const smooth = (original / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}
