import { ConfigError, type Env } from '../../lib/config';

/** Which executor runs query plans: `compiled` (compiled once per plan, this folder) or `stock` (@apollo/gateway's own). */
export type PlanExecutor = 'compiled' | 'stock';

const EXECUTORS: readonly PlanExecutor[] = ['compiled', 'stock'];

/** GATEWAY_PLAN_EXECUTOR. @default 'compiled' */
export function planExecutorFromEnv(env: Env): PlanExecutor {
  const value = env.string('GATEWAY_PLAN_EXECUTOR', 'compiled');
  if (!(EXECUTORS as readonly string[]).includes(value)) throw new ConfigError(`GATEWAY_PLAN_EXECUTOR expects one of ${EXECUTORS.join(', ')}, but got ${JSON.stringify(value)}`);
  return value as PlanExecutor;
}
