// The two matrix products the curvature engine lives on, routed through oneDNN's 1x1 convolution
// when that is faster than this libtorch's BLAS (float32 on the CPU, big enough shapes). Measured on
// the 2-core dev machine (Debian libtorch 1.13 + OpenBLAS, docs/RESULTS.md, 2026-11-26):
//   X Y^T, X,Y [128, P]:     P = 256: 263 -> 166 us, P = 784: 646 -> 271 us  (P = 128: BLAS wins)
//   D^T A, D [128, 512], A [128, 784]: 2,850 -> 789 us; [128,256]x[128,512]: 639 -> 397 us
//                                     ([128,10]x[128,256]: BLAS wins, 24 against 91 us)
// On other devices and dtypes both are plain `mm`. The results equal `mm`'s up to float32 rounding.
import { F, type Tensor } from '../tensor/index.js';

/** Row length from which `gemmNT` goes through oneDNN. */
const NT_CONV_MIN_P = 192;
/** Output size (rows x cols) from which `gemmTN` goes through oneDNN. */
const TN_CONV_MIN_OUT = 1 << 16;

const viaConv = (x: Tensor): boolean => x.dtype === 'float32' && x.device === 'cpu';

/** X Y^T for X [m, P], Y [n, P]: every pair of rows' dot product (Grams). */
export function gemmNT(x: Tensor, y: Tensor): Tensor {
  const p = x.size(1);
  if (!viaConv(x) || p < NT_CONV_MIN_P) return x.mm(y.t());
  const [m, n] = [x.size(0), y.size(0)];
  // input [1, P, m, 1] whose memory is X row-major (channels last); weight Y as [n, P, 1, 1].
  const out = F.conv2d(x.contiguous().view(1, m, 1, p).permute(0, 3, 1, 2), y.contiguous().view(n, p, 1, 1));
  return out.view(n, m).t();
}

/** X^T Y for X [N, m], Y [N, n]: a sum over the N rows (weight gradients, KFAC factors). */
export function gemmTN(x: Tensor, y: Tensor): Tensor {
  const [rows, m] = x.shape as [number, number];
  const n = y.size(1);
  if (!viaConv(x) || m * n < TN_CONV_MIN_OUT) return x.t().mm(y);
  // input Y as [1, N, 1, n] (channel = row), weight X^T as [m, N, 1, 1]: out[o, w] = sum_r X[r, o] Y[r, w].
  return F.conv2d(y.contiguous().view(1, rows, 1, n), x.t().contiguous().view(m, rows, 1, 1)).view(m, n);
}
