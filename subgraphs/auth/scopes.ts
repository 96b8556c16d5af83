/**
 * The scopes a credential can carry (the shared contract), keyed by
 * their names in the GraphQL `Scope` enum: the resolver map hands this object
 * to the enum, so resolvers and stores only ever see the scope strings.
 */
export const SCOPES = {
  INFERENCE_INVOKE: 'inference:invoke',
  KNOWLEDGE_READ: 'knowledge:read',
  KNOWLEDGE_WRITE: 'knowledge:write',
  BILLING_READ: 'billing:read',
  ADMIN: 'admin',
} as const;

export type Scope = (typeof SCOPES)[keyof typeof SCOPES];

export const ADMIN_SCOPE: Scope = SCOPES.ADMIN;

/** What a signed-in user may do; `admin` is added only for accounts that hold the role. */
export const SESSION_SCOPES: readonly Scope[] = [SCOPES.INFERENCE_INVOKE, SCOPES.KNOWLEDGE_READ, SCOPES.KNOWLEDGE_WRITE, SCOPES.BILLING_READ];

const KNOWN = new Set<string>(Object.values(SCOPES));

export function isScope(value: string): value is Scope {
  return KNOWN.has(value);
}
