// Optimizers (one interface: optimizer.ts), first-order rules and learning-rate schedules.
export * from './optimizer.js';
export { SGD, type SGDHyper, type SGDOptions } from './sgd.js';
export { AdamW, type AdamWHyper, type AdamWOptions } from './adamw.js';
export { KFAC, type KFACOptions } from './kfac.js';
export * from './schedule.js';
export { NGD, type NGDOptions, type NgdMode, type DampingMode, type Normalize, type Coefficients } from './ngd.js';
export { FNGD, type FNGDOptions } from './fngd.js';
export { CoefficientStore, type CoefficientKey } from './coefficient-store.js';
