// Optimizers (one interface: optimizer.ts), first-order rules and learning-rate schedules. The
// directions they apply (NGD, FNGD, iEF, KFAC, ...) are preconditioners: src/precondition.
export * from './optimizer.js';
export { SGD, type SGDHyper, type SGDOptions } from './sgd.js';
export { AdamW, type AdamWHyper, type AdamWOptions } from './adamw.js';
export * from './schedule.js';
export { clipGradNorm, type ClipGradNormOptions } from './clip.js';
