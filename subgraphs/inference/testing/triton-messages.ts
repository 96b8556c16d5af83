/**
 * Triton responses as the subgraph receives them (every field present, as
 * proto-loader decodes them), for tests that stand in for a GPU endpoint.
 */
import type { InferOutputTensor__Output, ModelInferResponse__Output } from '../../../protocol/triton/messages';

export function outputTensor(name: string, datatype: string, shape: number[]): InferOutputTensor__Output {
  return { name, datatype, shape, parameters: {}, contents: null };
}

/** A ModelInferResponse with the given fields and the decoder's defaults for the others. */
export function inferResponse(fields: Partial<ModelInferResponse__Output>): ModelInferResponse__Output {
  return { model_name: '', model_version: '', id: '', parameters: {}, outputs: [], raw_output_contents: [], ...fields };
}
