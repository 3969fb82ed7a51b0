// AdamW with PyTorch's exact update rule (torch.optim.AdamW, single-tensor path):
//   t += 1;  p *= 1 - lr * weightDecay
//   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
//   vmax = max(vmax, v)                                   (amsgrad)
//   denom = sqrt(amsgrad ? vmax : v) / sqrt(1 - beta2^t) + eps
//   p -= lr / (1 - beta1^t) * m / denom
import { zerosLike, type Tensor } from '../tensor/index.js';
import { checkBoolOption, checkOption, definedOnly, Optimizer, type ParamGroup, type ParamsInput, type ParamState, type PreconditionerOption } from './optimizer.js';

export interface AdamWHyper {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  amsgrad: boolean;
}
export type AdamWOptions = Partial<AdamWHyper> & PreconditionerOption;

export class AdamW extends Optimizer<AdamWHyper> {
  readonly kind = 'AdamW';

  /** PyTorch's defaults: lr 1e-3, betas [0.9, 0.999], eps 1e-8, weightDecay 1e-2, amsgrad false. */
  constructor(params: ParamsInput<AdamWHyper>, options: AdamWOptions = {}) {
    const { preconditioner = null, ...hyper } = options;
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, amsgrad: false, ...definedOnly(hyper) }, preconditioner);
  }

  protected override validateHyper(h: AdamWHyper, owner: string): void {
    checkOption(owner, 'lr', h.lr, { min: 0 });
    if (!Array.isArray(h.betas) || h.betas.length !== 2) throw new TypeError(`${owner}: option 'betas' must be [beta1, beta2], got ${JSON.stringify(h.betas)}`);
    checkOption(owner, 'betas[0]', h.betas[0], { min: 0, max: 1, maxExclusive: true });
    checkOption(owner, 'betas[1]', h.betas[1], { min: 0, max: 1, maxExclusive: true });
    checkOption(owner, 'eps', h.eps, { min: 0 });
    checkOption(owner, 'weightDecay', h.weightDecay, { min: 0 });
    checkBoolOption(owner, 'amsgrad', h.amsgrad);
  }

  protected override updateParam(p: Tensor, grad: Tensor, state: ParamState, group: ParamGroup<AdamWHyper>): void {
    const { lr, eps, weightDecay, amsgrad } = group;
    const [beta1, beta2] = group.betas;
    if (state.step === undefined) {
      state.step = 0;
      state.expAvg = zerosLike(p);
      state.expAvgSq = zerosLike(p);
    }
    if (amsgrad && state.maxExpAvgSq === undefined) state.maxExpAvgSq = zerosLike(p);
    const step = (state.step as number) + 1;
    state.step = step;
    const m = state.expAvg as Tensor;
    const v = state.expAvgSq as Tensor;

    p.mul_(1 - lr * weightDecay);
    m.mul_(beta1).add_(grad, 1 - beta1);
    v.mul_(beta2).addcmul_(grad, grad, 1 - beta2);

    const biasCorrection1 = 1 - beta1 ** step;
    const biasCorrection2 = 1 - beta2 ** step;
    const stepSize = lr / biasCorrection1;
    const biasCorrection2Sqrt = Math.sqrt(biasCorrection2);
    let second = v;
    if (amsgrad) {
      const vmax = state.maxExpAvgSq as Tensor;
      vmax.copy_(vmax.maximum(v));
      second = vmax;
    }
    const denom = second.sqrt().div(biasCorrection2Sqrt).add_(eps);
    p.addcdiv_(m, denom, -stepSize);
  }
}
