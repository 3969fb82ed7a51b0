// Preconditioners: each writes a direction into .grad for any first-order rule (src/optim) to apply.
export type { Preconditioner, PreconditionerStateDict, RuleContext, JsonValue } from './preconditioner.js';
export { ngd, fngd, ief, fastIef, thermodynamicNgd, engineSgd, kfac, type SampleSpaceMethodOptions, type StoreOptions } from './methods.js';
export { SampleSpacePreconditioner, directionCosine, type SampleSpaceOptions, type SampleSpaceSettings, type GroupMode } from './sample-space.js';
export { groupCount, type Coefficients, type CoefficientGroups } from './coefficients.js';
export { normalizeSolved, normalizeStored, NORMALIZATIONS, type Normalize } from './normalize.js';
export { KfacPreconditioner, type KfacEmbeddings, type KfacOptions, type KfacSettings } from './kfac.js';
export { choleskySolver, identitySolver, type CoefficientSolver, type SolveInput, type SolveOutput, type SolverStateDict } from './solver.js';
export { dampingAt, diagonalShift, type Damping, type DampingMode } from './damping.js';
export { rightHandSide, RIGHT_HAND_SIDES, type RightHandSide } from './rhs.js';
export { CoefficientReuse, type ReuseOptions, type ReuseSettings, type ReuseMeta } from './reuse.js';
export { CoefficientStore, type CoefficientKey, type CoefficientStoreMeta } from './coefficient-store.js';
export { thermodynamicSolver, type ThermodynamicOptions, type WarmStart } from './thermodynamic.js';
export { METHODS, RULES, RULE_OPTIONS, COMMON_OPTIONS, buildMethod, resolveValues, methodEntry, methodOptions, type MethodEntry, type MethodContext, type OptionSpec, type RuleName, type OptionKind, type OptionValue, type Values } from './registry.js';
