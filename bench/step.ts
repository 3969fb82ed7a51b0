// One SGD training step (forward, per-sample cross-entropy, mean backward, SGD-momentum update) of
// our stack against the same model in PyTorch (Debian's python3-torch, or FNGD_PYTHON's), same
// batch, threads, machine and device, timed in interleaved rounds.
//   npm run bench:step [-- --json] [-- --rounds N] [-- --device cuda] [-- --case mlp,resnet20,resnet18]
// On CUDA each side waits for the GPU before its clock stops: ours reads every step's loss back
// (Optimizer.step checks it is finite, before the backward) and synchronizes after its steps; the
// PyTorch body reads its loss after each update.
import { crossEntropyPerSample, mlp, resnet18Cifar, resnetSmall, type Layer } from '../src/nn/index.js';
import { SGD } from '../src/optim/index.js';
import { cuda, getNumThreads, keep, manualSeed, randint, randn, scope, type Device } from '../src/tensor/index.js';
import { PythonWorker, flag, interleave, positiveFlag, pythonTorchVersion, report } from './timing.js';

const argv = process.argv.slice(2);
const json = argv.includes('--json');
const rounds = positiveFlag(argv, 'rounds', 'bench:step') ?? 5;
const device = (flag(argv, 'device') ?? 'cpu') as Device;
if (!/^(cpu|cuda|cuda:\d+)$/.test(device)) throw new RangeError(`bench:step: --device must be cpu, cuda or cuda:N, got '${device}'`);
const cudaDevice = device !== 'cpu';
const threads = getNumThreads();
const B = 128;
// A tiny learning rate: full work per step, but no memorizing of the fixed batch (which drives
// gradients into denormal floats, 10x slower on a CPU, in both stacks).
const LR = 1e-6;

// The same models in PyTorch: the MLP, ResNet-20 (option-A shortcuts) and ResNet-18 (option B).
const PY_MODELS = `
import torch.nn as nn, torch.nn.functional as F
class Block(nn.Module):
    def __init__(s, cin, cout, stride):
        super().__init__()
        s.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); s.bn1 = nn.BatchNorm2d(cout)
        s.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); s.bn2 = nn.BatchNorm2d(cout)
        s.stride, s.extra = stride, cout - cin
    def forward(s, x):
        out = s.bn2(s.conv2(F.relu(s.bn1(s.conv1(x)))))
        sc = x
        if s.stride != 1 or s.extra:
            sc = F.pad(x[:, :, ::s.stride, ::s.stride], (0, 0, 0, 0, s.extra // 2, s.extra - s.extra // 2))
        return F.relu(out + sc)
class Block18(nn.Module):
    def __init__(s, cin, cout, stride):
        super().__init__()
        s.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); s.bn1 = nn.BatchNorm2d(cout)
        s.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); s.bn2 = nn.BatchNorm2d(cout)
        s.down = None if stride == 1 and cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    def forward(s, x):
        out = s.bn2(s.conv2(F.relu(s.bn1(s.conv1(x)))))
        return F.relu(out + (x if s.down is None else s.down(x)))
class ResNet(nn.Module):
    # CIFAR ResNets: conv3x3 stem, stages of n blocks at these widths (stride 2 from the second), fc.
    def __init__(s, block, widths, n):
        super().__init__()
        s.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False); s.bn1 = nn.BatchNorm2d(widths[0])
        blocks, cin = [], widths[0]
        for k, cout in enumerate(widths):
            for i in range(n):
                blocks.append(block(cin, cout, 2 if i == 0 and k > 0 else 1)); cin = cout
        s.blocks = nn.Sequential(*blocks); s.fc = nn.Linear(cin, 10)
    def forward(s, x):
        x = s.blocks(F.relu(s.bn1(s.conv1(x))))
        return s.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
`;

interface Case { name: string; model: () => Layer; shape: number[]; py: string; iters: number }
const CASES: Case[] = [
  { name: 'mlp', model: () => mlp({ inputSize: 784, hidden: [512, 256], classes: 10 }), shape: [B, 1, 28, 28], py: 'mlp()', iters: 20 },
  { name: 'resnet20', model: () => resnetSmall({ depth: 20, classes: 10 }), shape: [B, 3, 32, 32], py: 'ResNet(Block, (16, 32, 64), 3)', iters: 2 },
  // The paper's CIFAR ResNet-18 (11.2M parameters): minutes per round on a laptop CPU, for GPUs.
  { name: 'resnet18', model: () => resnet18Cifar({ classes: 10 }), shape: [B, 3, 32, 32], py: 'ResNet(Block18, (64, 128, 256, 512), 2)', iters: 2 },
];
const picked = (flag(argv, 'case') ?? 'mlp,resnet20').split(',');
for (const n of picked) if (!CASES.some((c) => c.name === n)) throw new RangeError(`bench:step: unknown --case '${n}' (${CASES.map((c) => c.name).join(', ')})`);
const cases = CASES.filter((c) => picked.includes(c.name));

const havePy = pythonTorchVersion() !== null;
const result: Record<string, unknown> = {};
for (const c of cases) {
  manualSeed(0);
  const model = c.model().to(device);
  const opt = new SGD(model.parameters(), { lr: LR, momentum: 0.9 });
  const x = keep(randn(c.shape, { device }));
  const y = keep(randint(0, 10, [B], { device }));
  const ids = new Int32Array(B);
  const ours = (n: number): number => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      scope(() => {
        opt.step({ perSampleLoss: crossEntropyPerSample(model.forward(x), y), sampleIds: ids, epoch: 0 });
      });
    }
    if (cudaDevice) cuda.synchronize(); // the last step's backward and update are queued, not done
    return (performance.now() - t0) / 1000;
  };
  const contenders: Record<string, (n: number) => number | Promise<number>> = { ours };
  let py: PythonWorker | null = null;
  if (havePy) {
    py = new PythonWorker(
      `${PY_MODELS}\ntorch.manual_seed(0)\nm = ${c.py}.to('${device}')\nopt = torch.optim.SGD(m.parameters(), lr=${LR}, momentum=0.9)\n`
        + `x = torch.randn(${c.shape.join(', ')}, device='${device}')\ny = torch.randint(0, 10, (${B},), device='${device}')`,
      `loss = F.cross_entropy(m(x), y, reduction="none").mean()\nopt.zero_grad()\nloss.backward()\nopt.step()${cudaDevice ? '\nloss.item()' : ''}`,
      threads,
    );
    contenders.torch = (n) => py!.run(n);
  }
  const t = await interleave(contenders, { rounds, iters: c.iters });
  result[`step_ms_${c.name}_ours`] = t.ours! * 1e3;
  result[`step_ms_${c.name}_pytorch`] = havePy ? t.torch! * 1e3 : null;
  result[`step_ratio_${c.name}_vs_pytorch`] = havePy ? t.ours! / t.torch! : null;
  py?.close();
  opt.dispose();
  model.dispose();
  x.dispose();
  y.dispose();
}
report({ ...result, batch: B, threads, rounds, device, pytorch: havePy ? pythonTorchVersion() : null }, json);
