/**
 * `--grpc-restricted-protocol` on the gRPC port: a server interceptor that
 * refuses a call of a restricted category whose metadata lacks
 * `triton-grpc-protocol-<key>: <value>`, with Triton's UNAVAILABLE "This
 * protocol is restricted, expecting header '…'", before the handler runs or
 * reads a message. Calls of open categories pass through untouched, and with
 * no restriction at all no interceptor is installed.
 */
import * as grpc from '@grpc/grpc-js';
import { TRITON_SERVICE_NAME } from '../../protocol/triton/loader';
import { grpcRestrictedMessage, type RestrictedCategory, type Restriction, type Restrictions } from '../access/restrictions';

/** The category of every RPC, as Triton's gRPC frontend files them. */
const RPC_CATEGORIES: Readonly<Record<string, RestrictedCategory>> = {
  ServerLive: 'health',
  ServerReady: 'health',
  ModelReady: 'health',
  ServerMetadata: 'metadata',
  ModelMetadata: 'metadata',
  ModelInfer: 'inference',
  ModelStreamInfer: 'inference',
  ModelConfig: 'model-config',
  ModelStatistics: 'statistics',
  RepositoryIndex: 'model-repository',
  RepositoryModelLoad: 'model-repository',
  RepositoryModelUnload: 'model-repository',
  SystemSharedMemoryStatus: 'shared-memory',
  SystemSharedMemoryRegister: 'shared-memory',
  SystemSharedMemoryUnregister: 'shared-memory',
  CudaSharedMemoryStatus: 'shared-memory',
  CudaSharedMemoryRegister: 'shared-memory',
  CudaSharedMemoryUnregister: 'shared-memory',
  TraceSetting: 'trace',
  LogSettings: 'logging',
};

/** The interceptor for `restrictions`, or undefined when nothing is restricted. */
export function restrictedProtocolsInterceptor(restrictions: Restrictions): grpc.ServerInterceptor | undefined {
  if (restrictions.size === 0) return undefined;
  // By full method path, computed once: a call costs one map look-up.
  const byPath = new Map<string, Restriction>();
  for (const [rpc, category] of Object.entries(RPC_CATEGORIES)) {
    const restriction = restrictions.get(category);
    if (restriction) byPath.set(`/${TRITON_SERVICE_NAME}/${rpc}`, restriction);
  }
  const health = restrictions.get('health');
  // Triton's health category also covers the gRPC health checking protocol.
  if (health) for (const rpc of ['Check', 'Watch']) byPath.set(`/grpc.health.v1.Health/${rpc}`, health);

  return (method, call) => {
    const restriction = byPath.get(method.path);
    if (!restriction) return new grpc.ServerInterceptingCall(call);
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        const values = metadata.get(restriction.header);
        if (values.length === 1 && typeof values[0] === 'string' && restriction.matches(values[0])) next(metadata);
        else call.sendStatus({ code: grpc.status.UNAVAILABLE, details: grpcRestrictedMessage(restriction), metadata: new grpc.Metadata() });
      })
      .build();
    return new grpc.ServerInterceptingCall(call, new grpc.ResponderBuilder().withStart((next) => next(listener)).build());
  };
}
