/**
 * Binds model instances to devices (Triton's instance_group). Each group
 * gives `count` instances per listed GPU (KIND_GPU) or `count` CPU instances
 * (KIND_CPU, KIND_MODEL). KIND_GPU runs with ONNX Runtime's CUDA execution
 * provider when this machine has it; otherwise each listed GPU becomes a CPU
 * execution slot — the instance keeps its own worker thread and session and
 * its device number, so the parallelism the config asks for is kept, and
 * statistics and metrics still name the GPU. KIND_AUTO (or no kind) is
 * KIND_GPU on GPU 0 when CUDA is available, KIND_CPU otherwise, as in Triton.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { InstanceBinding } from '../core/runner';
import type { ModelConfig } from '../../protocol/triton/model-config';

let cuda: boolean | undefined;

/**
 * Whether ONNX Runtime can run on CUDA here: onnxruntime-node lists the CUDA
 * backend (`listSupportedBackends()`), its provider library is installed next
 * to the native binding (the npm package ships it only when its install
 * script downloaded it: `bundled: false` otherwise), and the NVIDIA driver
 * exposes a device.
 */
export function cudaAvailable(): boolean {
  if (cuda === undefined) {
    const ort = require('onnxruntime-node') as { listSupportedBackends?: () => Array<{ name: string; bundled: boolean }> };
    const listed = ort.listSupportedBackends?.().find((b) => b.name === 'cuda');
    const bindingDir = path.join(path.dirname(require.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
    const providerInstalled = listed !== undefined && (listed.bundled || fs.existsSync(path.join(bindingDir, 'libonnxruntime_providers_cuda.so')));
    cuda = providerInstalled && fs.existsSync('/dev/nvidiactl');
  }
  return cuda;
}

/** The instances of a model, in order, with Triton's instance names (`<group name>_<n>`, the group named `<model>_<group index>` by default). */
export function instanceBindings(config: ModelConfig, withCuda: boolean): InstanceBinding[] {
  const groups = config.instance_group.length ? config.instance_group : [{}];
  const bindings: InstanceBinding[] = [];
  groups.forEach((group, g) => {
    const groupName = group.name || `${config.name}_${g}`;
    const count = Math.max(1, group.count ?? 1);
    const gpuKind = group.kind === 'KIND_GPU' || ((group.kind === undefined || group.kind === 'KIND_AUTO') && withCuda);
    const devices = gpuKind ? (group.gpus?.length ? group.gpus : [0]) : [-1];
    let n = 0;
    for (const device of devices) {
      for (let i = 0; i < count; i++) {
        bindings.push({
          name: `${groupName}_${n++}`,
          index: bindings.length,
          kind: gpuKind ? 'KIND_GPU' : 'KIND_CPU',
          device,
          executionProvider: gpuKind && withCuda ? 'cuda' : 'cpu',
        });
      }
    }
  });
  return bindings;
}
