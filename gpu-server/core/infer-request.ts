/**
 * A request as the core receives it from a transport adapter (gRPC, HTTP).
 * Its own module so that what shapes a request (parameter-inputs.ts) need
 * not import the core that runs it.
 */
import type { CoreParameterValue } from './request-parameters';

/** An input as received: datatype as sent (unchecked), data in the raw layout. */
export interface CoreInferInput {
  name: string;
  datatype: string;
  shape: number[];
  data: Buffer;
}

export interface CoreInferRequest {
  modelName: string;
  modelVersion?: string;
  id?: string;
  inputs: CoreInferInput[];
  /** Names of the outputs wanted; empty or absent: all. */
  outputs?: string[];
  /**
   * Request parameters: `priority`, `timeout` (µs), `triton_enable_empty_final_response`;
   * `sequence_*` are refused (see request-parameters.ts); others pass to the model.
   */
  parameters?: Record<string, CoreParameterValue>;
}
