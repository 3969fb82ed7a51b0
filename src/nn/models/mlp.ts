// A multilayer perceptron for flattened images (MNIST: mlp({ inputSize: 784, hidden: [512, 256], classes: 10 })).
import { Flatten, GELU, ReLU, Sequential, Tanh } from '../basic.js';
import type { InitOptions } from '../init.js';
import { Linear } from '../linear.js';
import type { Layer } from '../module.js';

export interface MlpOptions extends InitOptions {
  inputSize: number;
  hidden: number[];
  classes: number;
  activation?: 'relu' | 'tanh' | 'gelu';
}

/** Flatten, then Linear + activation per hidden size, then a Linear to the class logits. */
export function mlp(o: MlpOptions): Sequential {
  const act = (): Layer => (o.activation === 'tanh' ? new Tanh() : o.activation === 'gelu' ? new GELU() : new ReLU());
  const layers: Layer[] = [new Flatten()];
  let prev = o.inputSize;
  for (const h of o.hidden) {
    layers.push(new Linear(prev, h, o), act());
    prev = h;
  }
  layers.push(new Linear(prev, o.classes, o));
  return new Sequential(...layers);
}
