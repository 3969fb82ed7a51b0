export { mlp, type MlpOptions } from './mlp.js';
export { smallCnn, type SmallCnnOptions } from './cnn.js';
export { BasicBlock, ResNet, resnet18Cifar, resnetSmall, type ResNetOptions, type ResNetSmallOptions, type ShortcutType } from './resnet.js';
export { sinusoidalPositions, TransformerSeq2Seq, transformerSeq2Seq, type Encoded, type Seq2SeqOptions } from './seq2seq.js';
