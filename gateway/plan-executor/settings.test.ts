import { ConfigError, Env } from '../../lib/config';
import { planExecutorFromEnv } from './settings';

describe('GATEWAY_PLAN_EXECUTOR', () => {
  it('is compiled by default, and takes stock', () => {
    expect(planExecutorFromEnv(new Env({}))).toBe('compiled');
    expect(planExecutorFromEnv(new Env({ GATEWAY_PLAN_EXECUTOR: 'stock' }))).toBe('stock');
  });

  it('refuses anything else, naming the variable, the choices and the value', () => {
    expect(() => planExecutorFromEnv(new Env({ GATEWAY_PLAN_EXECUTOR: 'jit' }))).toThrow(new ConfigError('GATEWAY_PLAN_EXECUTOR expects one of compiled, stock, but got "jit"'));
  });
});
