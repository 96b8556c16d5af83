import type { ReactNode } from 'react';
import type { Session } from '../auth/session';
import { Link, usePath } from '../router';

const PAGES = [
  { path: '/chat', label: 'Chat' },
  { path: '/knowledge', label: 'Knowledge' },
  { path: '/account', label: 'Account' },
];

/** The frame of every signed-in page: a skip link, the navigation, the page's main region. */
export function Layout({ session, onSignOut, children }: { session: Session; onSignOut: () => void; children: ReactNode }) {
  const path = usePath();
  const pages = session.scopes.includes('admin') ? [...PAGES, { path: '/admin', label: 'Admin' }] : PAGES;
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="top-bar">
        <span className="brand">Sluice</span>
        <nav aria-label="Pages">
          <ul>
            {pages.map((page) => (
              <li key={page.path}>
                <Link to={page.path} aria-current={path === page.path || path.startsWith(`${page.path}/`) ? 'page' : undefined}>
                  {page.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <span className="who" title={session.user.email}>
          {session.user.name}
        </span>
        <button type="button" className="secondary" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </>
  );
}
