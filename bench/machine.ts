// What a benchmark ran on, recorded in every bench JSON so that numbers from different machines can
// be told apart (issue 13: the same code measured 0.91x on an Intel Xeon and 1.3x on an AMD EPYC).
import { readFileSync } from 'node:fs';
import { machineInfo } from '../src/report/machine.js';
import { blasInfo } from '../src/tensor/index.js';

/** The vector instruction sets the CPU reports (Linux /proc/cpuinfo), e.g. ['avx2', 'fma']. */
function vectorFlags(): string[] {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags')) ?? '';
    const flags = new Set(line.split(':')[1]?.trim().split(/\s+/) ?? []);
    return ['sse4_2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni', 'amx_tile'].filter((f) => flags.has(f));
  } catch {
    return [];
  }
}

export function benchMachine(): Record<string, unknown> {
  const m = machineInfo();
  const ob = blasInfo();
  return {
    cpu_model: m.cpu_model, cpus: m.cpus, vector_flags: vectorFlags(), blas: m.blas,
    // The kernel set OpenBLAS dispatched to (OPENBLAS_CORETYPE forces one) and its thread pool.
    openblas_coretype: ob?.core ?? process.env.OPENBLAS_CORETYPE ?? null, blas_threads: ob?.threads ?? null,
    torch: m.torch, threads: m.threads, node: m.node, date: m.date,
  };
}
