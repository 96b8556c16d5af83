import { useSyncExternalStore } from 'react';

/**
 * The signed-in session, kept in localStorage so it survives a reload (and is
 * shared by the tabs of one browser), dropped when it expires or when the
 * graph says its token is no longer valid (see graph/client.ts).
 */
export interface Session {
  token: string;
  expiresAt: string;
  user: { id: string; email: string; name: string };
  /** The token's scopes, to show only the pages it can use (the graph still checks every request). */
  scopes: string[];
}

const KEY = 'sluice.session';
const listeners = new Set<() => void>();
let current = load();

function load(): Session | null {
  try {
    const session = JSON.parse(localStorage.getItem(KEY) ?? 'null') as Session | null;
    return session && Date.parse(session.expiresAt) > Date.now() ? session : null;
  } catch {
    return null;
  }
}

/** The session, or null once it has expired (the graph would refuse its token). */
export function getSession(): Session | null {
  return current && Date.parse(current.expiresAt) > Date.now() ? current : null;
}

export function setSession(session: Session | null): void {
  current = session;
  if (session) localStorage.setItem(KEY, JSON.stringify(session));
  else localStorage.removeItem(KEY);
  for (const listener of listeners) listener();
}

/** A session from signUp's or login's payload. */
export function sessionFrom(payload: { token: string; expiresAt: string; user: Session['user'] }): Session {
  return { token: payload.token, expiresAt: payload.expiresAt, user: { id: payload.user.id, email: payload.user.email, name: payload.user.name }, scopes: tokenScopes(payload.token) };
}

/** The `scopes` claim of a session JWT (its payload is readable; only the gateway verifies the signature). */
function tokenScopes(token: string): string[] {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(payload)) as { scopes?: unknown };
    return Array.isArray(claims.scopes) ? claims.scopes.map(String) : [];
  } catch {
    return [];
  }
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

// Another tab signed in or out.
window.addEventListener('storage', (event) => {
  if (event.key !== KEY) return;
  current = load();
  for (const listener of listeners) listener();
});

export function useSession(): Session | null {
  return useSyncExternalStore(subscribe, getSession);
}
