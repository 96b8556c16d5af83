/**
 * Loads Triton's gRPC protocol (grpc_service.proto + model_config.proto) and
 * grpc.health.v1 for both the gpu-server and its clients (the inference
 * subgraph). The types in `generated/` are written by `npm run gen:protocol`
 * with exactly these options (generated-types.test.ts fails when they drift).
 */
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType as GrpcServiceProto } from './generated/grpc_service';
import type { ProtoGrpcType as HealthProto } from './generated/health';

/** The directory holding the .proto files. */
export const PROTO_DIR = __dirname;

/**
 * proto-loader options, shared by server and clients:
 * - `keepCase`: field names as in the .proto (`model_name`, `raw_input_contents`).
 * - `longs: Number`: int64/uint64 become JS numbers (shapes, counters, ns);
 *   values above 2^53 lose precision, which no field we use reaches.
 * - `enums: String`: enums as their names (`TYPE_FP32`, `KIND_CPU`).
 * - `defaults: true`: absent scalars decode to their zero value, repeated to `[]`.
 * - `oneofs: true`: a oneof's set member is named in a virtual field
 *   (`parameter_choice: 'int64_param'`).
 */
export const TRITON_PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

export const TRITON_PROTO_FILES = ['grpc_service.proto', 'health.proto'];

/** The full name of the Triton service, e.g. for grpc.health.v1 Check. */
export const TRITON_SERVICE_NAME = 'inference.GRPCInferenceService';

/** The loaded package object: the generated types of both files. */
export type TritonGrpcPackage = GrpcServiceProto & HealthProto;

let cachedDefinition: protoLoader.PackageDefinition | undefined;

/** The proto-loader package definition (cached: the files are parsed once). */
export function loadTritonPackageDefinition(): protoLoader.PackageDefinition {
  cachedDefinition ??= protoLoader.loadSync(
    TRITON_PROTO_FILES.map((file) => path.join(PROTO_DIR, file)),
    TRITON_PROTO_LOADER_OPTIONS,
  );
  return cachedDefinition;
}

/**
 * The grpc-js package object: `pkg.inference.GRPCInferenceService` is both the
 * client constructor (`new Service(address, credentials)`) and, through its
 * `.service` property, the service definition a server adds.
 */
export function loadTritonProto(): TritonGrpcPackage {
  return grpc.loadPackageDefinition(loadTritonPackageDefinition()) as unknown as TritonGrpcPackage;
}
