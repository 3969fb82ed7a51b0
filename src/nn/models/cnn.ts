// A small CNN for 28x28 grayscale images (Fashion-MNIST).
import { Flatten, ReLU, Sequential } from '../basic.js';
import { Conv2d, MaxPool2d } from '../conv.js';
import type { InitOptions } from '../init.js';
import { Linear } from '../linear.js';

export interface SmallCnnOptions extends InitOptions {
  classes?: number;
  /** Channels of the two conv layers (default [32, 64]). */
  channels?: [number, number];
  /** Width of the hidden linear layer (default 128). */
  hidden?: number;
  inChannels?: number;
  /** Input height = width (default 28). */
  imageSize?: number;
}

/**
 * conv5x5(pad 2) - ReLU - maxpool2 - conv5x5(pad 2) - ReLU - maxpool2 - flatten - linear - ReLU -
 * linear. Children '0'...'9'; the parametric ones are 0, 3 (conv) and 7, 9 (linear).
 */
export function smallCnn(o: SmallCnnOptions = {}): Sequential {
  const [c1, c2] = o.channels ?? [32, 64];
  const hidden = o.hidden ?? 128;
  const side = Math.floor(Math.floor((o.imageSize ?? 28) / 2) / 2);
  return new Sequential(
    new Conv2d(o.inChannels ?? 1, c1, 5, { ...o, padding: 2 }), new ReLU(), new MaxPool2d(2),
    new Conv2d(c1, c2, 5, { ...o, padding: 2 }), new ReLU(), new MaxPool2d(2),
    new Flatten(),
    new Linear(c2 * side * side, hidden, o), new ReLU(),
    new Linear(hidden, o.classes ?? 10, o),
  );
}
