// Neural-network layers, models, losses, taps and safetensors state dicts.
export { Module, type Layer, type LoadStateDictOptions } from './module.js';
export * as init from './init.js';
export type { InitOptions } from './init.js';
export { Linear, Embedding, type LinearOptions, type EmbeddingOptions } from './linear.js';
export { Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, type Conv2dOptions, type Pair } from './conv.js';
export { BatchNorm2d, LayerNorm, type BatchNormOptions, type LayerNormOptions } from './norm.js';
export { ReLU, GELU, Tanh, Identity, Flatten, Dropout, ModuleList, Sequential } from './basic.js';
export { MultiheadAttention, causalMask, fromTorchAttentionKeys, type AttentionMasks, type KeysValues, type MultiheadAttentionOptions } from './attention.js';
export {
  TransformerEncoderLayer, TransformerDecoderLayer, TransformerEncoder, TransformerDecoder,
  type TransformerLayerOptions, type TransformerStackOptions, type EncoderLayerMasks, type DecoderLayerMasks,
} from './transformer.js';
export { TapRecorder, tapLayers, tapKind, type TapKind, type TapRecord, type TapSink, type TappableLayer } from './taps.js';
export { crossEntropyPerSample, crossEntropyLoss, type CrossEntropyOptions, type LossReduction } from './loss.js';
export { saveSafetensors, loadSafetensors, saveModule, loadModule, readSafetensorsMetadata, CHECKSUM_KEY, type SaveSafetensorsOptions } from './safetensors.js';
export * from './models/index.js';
