/** The streamed error code parameter, through the proto's real encoding. */
import { status } from '@grpc/grpc-js';
import { ERROR_CODE_PARAMETER, errorCodeParameter, streamedErrorStatus } from './error-code';
import { loadTritonProto } from './loader';

const StreamResponse = loadTritonProto().inference.ModelStreamInferResponse;

function roundTrip(parameters: ReturnType<typeof errorCodeParameter>) {
  const message = StreamResponse.deserialize(StreamResponse.serialize({ error_message: 'refused', infer_response: { id: 'r1', parameters } }));
  return message.infer_response!.parameters;
}

describe('sluice_error_code', () => {
  it('carries a gRPC status by name and reads back as the same status', () => {
    for (const code of [status.INVALID_ARGUMENT, status.NOT_FOUND, status.UNAVAILABLE, status.RESOURCE_EXHAUSTED, status.INTERNAL]) {
      const parameters = roundTrip(errorCodeParameter(code));
      expect(parameters[ERROR_CODE_PARAMETER].string_param).toBe(status[code]);
      expect(streamedErrorStatus(parameters)).toBe(code);
    }
  });

  it('reads as no status when absent (NVIDIA Triton) or naming no gRPC status', () => {
    expect(streamedErrorStatus(roundTrip({}))).toBeUndefined();
    expect(streamedErrorStatus(roundTrip({ [ERROR_CODE_PARAMETER]: { string_param: 'ON_FIRE' } }))).toBeUndefined();
    expect(streamedErrorStatus(roundTrip({ [ERROR_CODE_PARAMETER]: { string_param: 'toString' } }))).toBeUndefined();
  });
});
