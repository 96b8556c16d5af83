import path from 'node:path';
import { buildModels } from '../gpu-server/model-builder/build-models';

/** Builds the model repository's ONNX files once before any test (deterministic, no download). */
export default async function globalSetup(): Promise<void> {
  await buildModels(path.resolve(__dirname, '..', 'gpu-server', 'model_repository'));
}
