// Per-sample curvature: one capture per batch gives exact per-layer Grams, weighted gradients,
// per-sample gradients and KFAC factors; `solveCoefficients` turns a Gram into coefficients.
export { CurvatureEngine, type CurvatureOptions, type CoveredLayer } from './engine.js';
export { Capture, type Alpha, type UncoveredGrad, type CaptureConfig, type CaptureContext } from './capture.js';
export { planGram, layerGram, type GramMethod, type GramPlan } from './gram.js';
export { LayerCurvature, type Use, type PerSampleGrads, type LayerGrads, type KfacFactors, type MethodCost, type WeightedOptions, type Scratch } from './layers.js';
export { LinearCurvature } from './linear.js';
export { ConvCurvature } from './conv.js';
export { EmbeddingCurvature } from './embedding.js';
export { solveCoefficients, solveCoefficientsBatched, solveCoefficientsEx, type SolveOptions, type SolveResult } from './solve.js';
export { gemmNT, gemmTN, gemmRoute, gemmRoutes, gemmRoutesTiming, gemmState, restoreGemmState, setGemmAutotune, setGemmCache, type GemmRoute, type GemmState } from './gemm.js';
