// Dense linear algebra (LAPACK through libtorch). Batched over leading dimensions.
import { defineOp } from './op.js';
import { Tensor } from './tensor.js';

const choleskyOp = defineOp('linalg_cholesky');
const choleskyExOp = defineOp('linalg_cholesky_ex');
const choleskySolveOp = defineOp('cholesky_solve');
const solveOp = defineOp('linalg_solve');
const invOp = defineOp('linalg_inv');
const eighOp = defineOp('linalg_eigh');
const detOp = defineOp('linalg_det');
const triangularSolveOp = defineOp('linalg_solve_triangular');

/** Lower-triangular L with A = L L^T; throws if A is not positive definite. */
export function cholesky(a: Tensor): Tensor {
  return choleskyOp(a, false) as Tensor;
}

/** Cholesky without throwing: `info` is 0 on success, else the order of the failing minor. */
export function choleskyEx(a: Tensor): { L: Tensor; info: Tensor } {
  const [L, info] = choleskyExOp(a, false, false) as [Tensor, Tensor];
  return { L, info };
}

/** Solves A X = B given the lower Cholesky factor L of A. */
export function choleskySolve(b: Tensor, L: Tensor): Tensor {
  return choleskySolveOp(b, L, false) as Tensor;
}

/** Solves A X = B (LU with pivoting). */
export function solve(a: Tensor, b: Tensor): Tensor {
  return solveOp(a, b, true) as Tensor;
}

export function solveTriangular(a: Tensor, b: Tensor, o: { upper: boolean; left?: boolean; unitriangular?: boolean }): Tensor {
  return triangularSolveOp(a, b, o.upper, o.left ?? true, o.unitriangular ?? false) as Tensor;
}

export function inverse(a: Tensor): Tensor {
  return invOp(a) as Tensor;
}

/** Eigen-decomposition of a symmetric matrix: ascending eigenvalues and orthonormal eigenvectors (columns). */
export function eigh(a: Tensor): { values: Tensor; vectors: Tensor } {
  const [values, vectors] = eighOp(a, 'L') as [Tensor, Tensor];
  return { values, vectors };
}

export function det(a: Tensor): Tensor {
  return detOp(a) as Tensor;
}
