// Benchmarks of the native core: per-call overhead, matmul throughput, and conv2d forward+backward
// against Debian's python3-torch (same libtorch) on the same machine and thread count, interleaved.
//   npm run bench:core [-- --json] [-- --quick]
import { F, Tensor, getNumThreads, buildInfo, keep, ones, randn, scope } from '../src/tensor/index.js';
import { PythonWorker, interleave, median, pythonTorchVersion, report, timeIt } from './timing.js';

const json = process.argv.includes('--json');
const quick = process.argv.includes('--quick');
const threads = getNumThreads();

function opOverheadUs(): number {
  const a = keep(ones([1]));
  const b = keep(ones([1]));
  const call = (): void => a.add(b).dispose();
  timeIt(call, 20_000);
  const rounds: number[] = [];
  for (let r = 0; r < 9; r++) rounds.push(timeIt(call, 20_000) / 20_000);
  a.dispose();
  b.dispose();
  return median(rounds) * 1e6;
}

function matmul512Gflops(): number {
  const a = keep(randn([512, 512]));
  const b = keep(randn([512, 512]));
  const call = (): void => a.matmul(b).dispose();
  timeIt(call, 5);
  const rounds: number[] = [];
  for (let r = 0; r < 9; r++) rounds.push(timeIt(call, 10) / 10);
  a.dispose();
  b.dispose();
  return (2 * 512 ** 3) / median(rounds) / 1e9;
}

async function convRatio(): Promise<{ ratio: number | null; oursMs: number; torchMs: number | null }> {
  const x = keep(randn([128, 16, 32, 32]).requiresGrad_());
  const w = keep(randn([32, 16, 3, 3]).mul(0.1).detach().requiresGrad_());
  const b = keep(randn([32]).requiresGrad_());
  const gy = keep(randn([128, 32, 32, 32]));
  const params: Tensor[] = [x, w, b];
  const ours = (n: number): number => timeIt(() => {
    scope(() => F.conv2d(x, w, b, { padding: 1 }).backward(gy));
    for (const p of params) p.zeroGrad();
  }, n);
  const rounds = quick ? 3 : 7;
  const iters = quick ? 3 : 5;
  const haveTorch = pythonTorchVersion() !== null;
  if (!haveTorch) {
    const t = await interleave({ ours }, { rounds, iters });
    return { ratio: null, oursMs: t.ours! * 1e3, torchMs: null };
  }
  const py = new PythonWorker(
    [
      'torch.manual_seed(0)',
      'x = torch.randn(128, 16, 32, 32, requires_grad=True)',
      'w = (torch.randn(32, 16, 3, 3) * 0.1).requires_grad_()',
      'b = torch.randn(32, requires_grad=True)',
      'gy = torch.randn(128, 32, 32, 32)',
    ].join('\n'),
    [
      'torch.nn.functional.conv2d(x, w, b, padding=1).backward(gy)',
      'x.grad = None; w.grad = None; b.grad = None',
    ].join('\n'),
    threads,
  );
  try {
    const t = await interleave({ ours, torch: (n) => py.run(n) }, { rounds, iters });
    return { ratio: t.ours! / t.torch!, oursMs: t.ours! * 1e3, torchMs: t.torch! * 1e3 };
  } finally {
    py.close();
    for (const p of [...params, gy]) p.dispose();
  }
}

const conv = await convRatio();
report({
  op_overhead_us: opOverheadUs(),
  matmul512_gflops: matmul512Gflops(),
  conv_fwd_bwd_ratio_vs_pytorch: conv.ratio,
  conv_fwd_bwd_ms_ours: conv.oursMs,
  conv_fwd_bwd_ms_pytorch: conv.torchMs,
  threads,
  libtorch: buildInfo().torchVersion,
  python_torch: pythonTorchVersion(),
}, json);
