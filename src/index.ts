// fngd: natural-gradient training on libtorch. The public API.
export * from './tensor/index.js';
