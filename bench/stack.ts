/** Whole-stack helpers for the benchmarks: a stack on free ports, a signed-in user, a model repository variant. */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gql, uniqueEmail } from '../test/support/graphql';
import type { StackOptions } from '../scripts/stack';
import { startTestStack, type TestStack } from '../test/support/stack';

export async function benchStack(env: Record<string, string> = {}, options: Pick<StackOptions, 'nodeArgs'> = {}): Promise<{ stack: TestStack; token: string }> {
  const stack = await startTestStack({ SLUICE_LOG_LEVEL: 'error', GATEWAY_SUBSCRIPTIONS_PER_CONNECTION: '1000', GATEWAY_SUBSCRIPTIONS_PER_USER: '1000', ...env }, options);
  const res = await gql(stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "Bench") { token } }', { e: uniqueEmail('bench') });
  if (!res.data) throw new Error(`sign-up failed: ${JSON.stringify(res.errors)}`);
  return { stack, token: res.data.signUp.token };
}

/** A copy of the model repository (built models included) with one model's config.pbtxt rewritten. */
export function repositoryVariant(model: string, edit: (config: string) => string): { root: string; remove(): void } {
  const root = mkdtempSync(path.join(tmpdir(), 'sluice-bench-repo-'));
  cpSync(path.resolve('gpu-server/model_repository'), root, { recursive: true });
  const file = path.join(root, model, 'config.pbtxt');
  writeFileSync(file, edit(readFileSync(file, 'utf8')));
  return { root, remove: () => rmSync(root, { recursive: true, force: true }) };
}
