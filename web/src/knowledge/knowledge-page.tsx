import { Documents } from './documents';
import { Ask, Search } from './search-and-ask';

export function KnowledgePage() {
  return (
    <div className="knowledge">
      <h1>Knowledge</h1>
      <Documents />
      <Search />
      <Ask />
    </div>
  );
}
