// SGD with PyTorch's exact update rule (torch.optim.SGD, single-tensor path):
//   g = grad + weightDecay * p
//   b = g on the first step, then b = momentum * b + (1 - dampening) * g
//   g = nesterov ? g + momentum * b : b            (when momentum != 0)
//   p = p - lr * g
import type { Tensor } from '../tensor/index.js';
import { checkBoolOption, checkOption, definedOnly, Optimizer, type ParamGroup, type ParamsInput, type ParamState, type PreconditionerOption } from './optimizer.js';

export interface SGDHyper {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
}
export type SGDOptions = Pick<SGDHyper, 'lr'> & Partial<SGDHyper> & PreconditionerOption;

export class SGD extends Optimizer<SGDHyper> {
  readonly kind: string = 'SGD';

  constructor(params: ParamsInput<SGDHyper>, options: SGDOptions) {
    const { preconditioner = null, ...hyper } = options;
    super(params, { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...definedOnly(hyper) }, preconditioner);
  }

  protected override validateHyper(h: SGDHyper, owner: string): void {
    checkOption(owner, 'lr', h.lr, { min: 0 });
    checkOption(owner, 'momentum', h.momentum, { min: 0, max: 1, maxExclusive: true });
    checkOption(owner, 'dampening', h.dampening, { min: 0, max: 1 });
    checkOption(owner, 'weightDecay', h.weightDecay, { min: 0 });
    checkBoolOption(owner, 'nesterov', h.nesterov);
    if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0)) {
      throw new RangeError(`${owner}: option 'nesterov' requires 'momentum' > 0 and 'dampening' = 0 (got momentum ${h.momentum}, dampening ${h.dampening})`);
    }
  }

  protected override updateParam(p: Tensor, grad: Tensor, state: ParamState, group: ParamGroup<SGDHyper>): void {
    const { lr, momentum, dampening, weightDecay, nesterov } = group;
    let d = weightDecay !== 0 ? grad.add(p, weightDecay) : grad;
    if (momentum !== 0) {
      const buf = state.momentumBuffer as Tensor | undefined;
      if (buf === undefined) {
        state.momentumBuffer = d.clone();
        d = nesterov ? d.add(state.momentumBuffer, momentum) : state.momentumBuffer;
      } else {
        buf.mul_(momentum).add_(d, 1 - dampening);
        d = nesterov ? d.add(buf, momentum) : buf;
      }
    }
    p.add_(d, -lr);
  }
}
