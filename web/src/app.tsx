import { lazy, Suspense, useEffect } from 'react';
import { SignInPage, SignUpPage } from './auth/auth-pages';
import { setSession, useSession, type Session } from './auth/session';
import { client, resetForNewSession } from './graph/client';
import { graphql } from './gql';
import { navigate, usePath } from './router';
import { Layout } from './ui/layout';
import { Loading } from './ui/notices';

// Each signed-in page is its own chunk (Markdown, the chart library…), so the sign-in page, the first a
// newcomer sees, loads only what it needs; a page's chunk is fetched the first time it is opened.
const ChatPage = lazy(() => import('./chat/chat-page').then((m) => ({ default: m.ChatPage })));
const KnowledgePage = lazy(() => import('./knowledge/knowledge-page').then((m) => ({ default: m.KnowledgePage })));
const DocumentPage = lazy(() => import('./knowledge/document-page').then((m) => ({ default: m.DocumentPage })));
const AccountPage = lazy(() => import('./account/account-page').then((m) => ({ default: m.AccountPage })));
const AdminPage = lazy(() => import('./admin/admin-page').then((m) => ({ default: m.AdminPage })));

const LOGOUT = graphql(`
  mutation Logout {
    logout
  }
`);

const TITLES: Record<string, string> = { '/chat': 'Chat', '/knowledge': 'Knowledge', '/account': 'Account', '/admin': 'Admin', '/sign-in': 'Sign in', '/sign-up': 'Sign up' };

/** Ends the session on the server too; the browser forgets it whatever the server says. */
async function signOut(): Promise<void> {
  await client.mutate({ mutation: LOGOUT }).catch(() => undefined);
  setSession(null);
  await resetForNewSession();
}

function SignedIn({ session, path }: { session: Session; path: string }) {
  const documentId = /^\/knowledge\/documents\/([^/]+)$/.exec(path)?.[1];
  const page =
    path === '/knowledge' ? (
      <KnowledgePage />
    ) : documentId ? (
      <DocumentPage id={decodeURIComponent(documentId)} />
    ) : path === '/account' ? (
      <AccountPage session={session} />
    ) : path === '/admin' && session.scopes.includes('admin') ? (
      <AdminPage />
    ) : (
      <ChatPage session={session} />
    );
  return (
    <Layout session={session} onSignOut={() => void signOut()}>
      <Suspense fallback={<Loading what="the page" />}>{page}</Suspense>
    </Layout>
  );
}

export function App() {
  const session = useSession();
  const path = usePath();
  const signInPage = path === '/sign-up' ? '/sign-up' : '/sign-in';

  // Signed out: only the sign-in and sign-up pages. Signed in: those send you to the chat. Unknown paths land on the chat.
  useEffect(() => {
    if (!session && path !== signInPage) navigate(signInPage, { replace: true });
    else if (session && (path === '/sign-in' || path === '/sign-up' || path === '/')) navigate('/chat', { replace: true });
  }, [session, path, signInPage]);

  // For bench/web-app.ts: when the first page was on screen, in the page's own clock.
  useEffect(() => void performance.mark('sluice:app-rendered'), []);

  useEffect(() => {
    document.title = `${TITLES[path] ?? (path.startsWith('/knowledge/') ? 'Document' : 'Chat')} · Sluice`;
  }, [path]);

  if (!session) return path === '/sign-up' ? <SignUpPage /> : <SignInPage />;
  return <SignedIn session={session} path={path} />;
}
