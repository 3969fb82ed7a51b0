// The machine a benchmark or a report ran on: OS, CPU, threads, libtorch and the BLAS it loaded.
import { readFileSync } from 'node:fs';
import { arch, availableParallelism, cpus, release, type } from 'node:os';
import { basename } from 'node:path';
import { buildInfo, cuda, getNumThreads, type Device } from '../tensor/index.js';
import type { MachineInfo } from './report.js';

/** The BLAS libtorch was configured with and the BLAS libraries actually loaded (Linux). */
function blasLine(config: string): string {
  const info = /BLAS_INFO=([^,\s]+)/.exec(config)?.[1] ?? 'unknown';
  let loaded: string[] = [];
  try {
    const libs = readFileSync('/proc/self/maps', 'utf8').split('\n').map((l) => basename(l.trim().split(/\s+/)[5] ?? ''));
    loaded = [...new Set(libs.filter((l) => /blas|lapack|mkl/i.test(l)))].sort();
  } catch {
    // Not Linux: the configured BLAS is all we can say.
  }
  return `BLAS_INFO=${info}${loaded.length ? `; loaded ${loaded.join(', ')}` : ''}`;
}

export function machineInfo(device: Device = 'cpu'): MachineInfo {
  const b = buildInfo();
  return {
    os: `${type()} ${release()} ${arch()}`,
    cpus: availableParallelism(),
    cpu_model: cpus()[0]?.model.trim() ?? 'unknown',
    threads: getNumThreads(),
    torch: b.torchVersion,
    blas: blasLine(b.config),
    device,
    cuda_available: cuda.isAvailable(),
    node: process.version,
    date: new Date().toISOString(),
  };
}

