import cluster from 'node:cluster';
import type { JSONWebKeySet } from 'jose';

/**
 * Auth's session answers and session-token keys, shared by the gateway's
 * worker processes (gateway/workers.ts). Each worker caches what auth said on
 * its own, and the cluster hands each new connection to the next worker:
 * without sharing, a caller whose connections happened to reach one worker
 * has no answer at the others, and while auth is down those refuse it with
 * 503 (a new graphql-ws stream, 4503) although the gateway did check the
 * session. A worker's fresh answer is sent to the primary, which passes it to
 * the other workers; each holds it as if it had asked (same bound, counted
 * from when the question was sent).
 *
 * The primary also keeps the latest of each, and gives them to every worker
 * that starts listening: a worker that started late, or replaced one that
 * died, during an auth outage would otherwise know no session and hold no key
 * to verify a token with.
 *
 * Only session answers travel: they are held under the session id, which is
 * no secret, whereas API-key answers are held under an HMAC with a key born in
 * each worker (credentials/cached-verifier.ts). The keys are auth's public JWKS.
 */
const SESSIONS = 'sluice:session-answers';
const KEYS = 'sluice:session-keys';

export interface SessionAnswer {
  sessionId: string;
  revoked: boolean;
  askedAt: number;
}

/** The JWKS as fetched, with when (jose's JWKSCacheInput). */
export interface SessionKeys {
  uat: number;
  jwks: JSONWebKeySet;
}

interface SessionAnswersMessage {
  type: typeof SESSIONS;
  answers: SessionAnswer[];
}

interface SessionKeysMessage {
  type: typeof KEYS;
  keys: SessionKeys;
}

function isSessionAnswers(message: unknown): message is SessionAnswersMessage {
  const m = message as Partial<SessionAnswersMessage> | null;
  return m?.type === SESSIONS && Array.isArray(m.answers);
}

function isSessionKeys(message: unknown): message is SessionKeysMessage {
  const m = message as Partial<SessionKeysMessage> | null;
  return m?.type === KEYS && typeof m.keys?.uat === 'number' && Array.isArray(m.keys.jwks?.keys);
}

function isSessionAnswer(answer: unknown): answer is SessionAnswer {
  const a = answer as Partial<SessionAnswer> | null;
  return typeof a?.sessionId === 'string' && typeof a.revoked === 'boolean' && typeof a.askedAt === 'number';
}

/**
 * In the primary: passes each worker's answers and keys on to the other
 * workers, and the latest `maxSessions` answers and the latest keys to each
 * worker once it listens (the workers drop answers past their own bound).
 */
export function relayCredentialAnswers(maxSessions = 10_000): void {
  const sessions = new Map<string, SessionAnswer>();
  let keys: SessionKeysMessage | undefined;
  cluster.on('message', (from, message: unknown) => {
    if (isSessionAnswers(message)) {
      for (const answer of message.answers.filter(isSessionAnswer)) {
        if ((sessions.get(answer.sessionId)?.askedAt ?? -Infinity) >= answer.askedAt) continue;
        sessions.delete(answer.sessionId);
        sessions.set(answer.sessionId, answer);
        if (sessions.size > maxSessions) sessions.delete(sessions.keys().next().value as string);
      }
    } else if (isSessionKeys(message)) {
      if (message.keys.uat <= (keys?.keys.uat ?? -Infinity)) return;
      keys = message;
    } else {
      return;
    }
    for (const worker of Object.values(cluster.workers ?? {})) {
      if (worker && worker !== from && worker.isConnected()) worker.send(message);
    }
  });
  // Sent on 'listening', when the worker's Authenticator exists (it is built before the server listens) and can learn them.
  cluster.on('listening', (worker) => {
    if (!worker.isConnected()) return;
    if (keys) worker.send(keys);
    if (sessions.size > 0) worker.send({ type: SESSIONS, answers: [...sessions.values()] } satisfies SessionAnswersMessage);
  });
}

export interface CredentialSharing {
  shareSession(answer: SessionAnswer): void;
  shareKeys(keys: SessionKeys): void;
}

/**
 * In a worker: `learn` receives the other workers' answers and keys, and the
 * returned functions send this worker's; outside a cluster worker nothing is
 * shared (undefined).
 */
export function shareCredentialAnswers(learn: { session(answer: SessionAnswer): void; keys(keys: SessionKeys): void }): CredentialSharing | undefined {
  const send = process.send?.bind(process);
  if (!cluster.isWorker || !send) return undefined;
  process.on('message', (message: unknown) => {
    if (isSessionAnswers(message)) for (const answer of message.answers.filter(isSessionAnswer)) learn.session(answer);
    else if (isSessionKeys(message)) learn.keys(message.keys);
  });
  return {
    shareSession: (answer) => send({ type: SESSIONS, answers: [answer] } satisfies SessionAnswersMessage),
    shareKeys: (keys) => send({ type: KEYS, keys } satisfies SessionKeysMessage),
  };
}
