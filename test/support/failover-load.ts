import { randomUUID } from 'node:crypto';
import type { RedisRateStore } from '../../gateway/rate-limits/stores';
import type { BalanceStore } from '../../subgraphs/billing/balance-store';
import type { Ledger } from '../../subgraphs/billing/ledger';
import { CHAT_PRICES, expectedCharge, newUser, usageEvent } from '../../subgraphs/billing/testing/fixtures';

/**
 * The loads the Redis Cluster and Sentinel tests run across a failover
 * (`fault`: a master lost or handed over), and what must hold after it.
 */

/** Retries an idempotent step until Redis answers (a failover refuses or loses commands for a few seconds); a coded (domain) error is final. */
export async function retried<T>(step: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await step();
    } catch (error) {
      if ((error as { extensions?: unknown }).extensions || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/**
 * Twelve users reserve, settle and top up while `fault` runs, each step
 * retried as the usage consumer would; returns each user's expected total
 * (free credit + top-ups − settled charges), for the caller to compare with
 * the balances, and the errors met on the way.
 */
export async function billingAcross(ledger: Ledger, model: string, freeMicros: number, fault: () => Promise<void>): Promise<{ expected: Map<string, number>; failures: Error[] }> {
  const users = Array.from({ length: 12 }, newUser);
  const expected = new Map<string, number>(users.map((user) => [user, freeMicros]));
  const failures: Error[] = [];
  const noted = <T>(step: () => Promise<T>) =>
    retried(() =>
      step().catch((error: Error) => {
        failures.push(error);
        throw error;
      }),
    );
  let stop = false;
  const load = users.map(async (userId, u) => {
    const keyId = u % 2 ? 'k' : null;
    for (let i = 0; !stop || i < 5; i++) {
      const reservationId = randomUUID();
      const held = await noted(() => ledger.reserve({ reservationId, userId, keyId, model, promptTokens: 100, maxCompletionTokens: 100 }));
      const event = usageEvent({ userId, keyId, model, reservationId: held.reservationId, promptCacheHitTokens: i, promptCacheMissTokens: 50, completionTokens: 10 + i });
      // Settling again after a failure is what the usage consumer does (the event stays pending): once, however often.
      const outcome = await noted(async () => {
        const result = await ledger.settle(event);
        if (result.status === 'refused') throw new Error(`refused: ${result.reason}`);
        return result;
      });
      // Counted from the event, not from the answer: a retry after a lost answer finds it settled (duplicate), and must be.
      if (outcome.status !== 'settled' && outcome.status !== 'duplicate') throw new Error(`settle answered ${JSON.stringify(outcome)}`);
      expected.set(userId, expected.get(userId)! - expectedCharge(CHAT_PRICES, i, 50, 10 + i));
      if (i % 4 === 0) {
        const key = randomUUID();
        await noted(() => ledger.topUp(userId, 1_000, key));
        expected.set(userId, expected.get(userId)! + 1_000);
      }
    }
  });
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  await fault();
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  stop = true;
  await Promise.all(load);
  return { expected, failures };
}

/** Each user's balance against `expected`: totals exact and nothing left held. */
export async function balancesOf(balances: BalanceStore, expected: Map<string, number>): Promise<{ actual: unknown[]; wanted: unknown[] }> {
  const actual: unknown[] = [];
  const wanted: unknown[] = [];
  for (const [user, total] of expected) {
    const balance = await balances.forUser(user);
    actual.push({ user, total: balance.total, reserved: balance.reserved });
    wanted.push({ user, total, reserved: 0 });
  }
  return { actual, wanted };
}

/**
 * Eight clients charge one rate-limit window of `limit` until a third of it is
 * used, then `fault` runs, then they go on for 1.5 s: the counts admitted
 * before the fault and in all, and the window's count after.
 */
export async function rateLimitAcross(store: RedisRateStore, key: string, limit: number, fault: () => Promise<void>): Promise<{ before: number; admitted: number; used: number }> {
  let admitted = 0;
  let stop = false;
  const clients = Array.from({ length: 8 }, async () => {
    while (!stop) {
      try {
        if ((await store.charge([{ key, limit, cost: 1 }])).admitted) admitted++;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50)); // the gateway's own fallback is not under test here
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  });
  while (admitted < limit / 3) await new Promise((resolve) => setTimeout(resolve, 5));
  const before = admitted;
  await fault();
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  stop = true;
  await Promise.all(clients);
  const used = (await store.charge([{ key, limit, cost: 0 }])).windows[0].used;
  return { before, admitted, used };
}
