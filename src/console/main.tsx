// The console's shell: sign-in (a token exchanged for an HttpOnly session cookie), the
// navigation and a hash router (#/overview, #/nodes, ... so the daemon serves one page).
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { del, get, post, setUnauthenticatedHandler, type Role } from './api.js';
import { AuditPage, BrowsePage, ClientsPage, EventsPage, NodesPage, OverviewPage, ProtectionPage, RaftPage } from './pages.js';

const PAGES = [
  ['overview', 'Overview'],
  ['nodes', 'Nodes'],
  ['raft', 'Raft'],
  ['events', 'Events'],
  ['protection', 'Protection'],
  ['browse', 'Browse'],
  ['clients', 'Clients'],
  ['audit', 'Audit'],
] as const;

function useHash(): { page: string; query: URLSearchParams } {
  const read = () => {
    const h = location.hash.replace(/^#\/?/, '');
    const [page, q] = h.split('?');
    return { page: page || 'overview', query: new URLSearchParams(q ?? '') };
  };
  const [v, setV] = useState(read);
  useEffect(() => {
    const on = () => setV(read());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return v;
}

function SignIn({ onDone }: { onDone: (r: Role) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const r = await post<{ role: Role }>('/api/v1/session', { token });
      onDone(r.role);
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <form class="signin" onSubmit={(e) => void submit(e)}>
      <h1>dfs console</h1>
      <p class="muted">Sign in with a console token of this daemon: console-admin.token (admin) or console-readonly.token (read-only) in its data dir.</p>
      <label for="token">token</label>
      <input id="token" name="token" type="password" autoComplete="current-password" value={token} onInput={(e) => setToken((e.currentTarget as HTMLInputElement).value)} />
      {error ? <div class="error" role="alert">{error}</div> : null}
      <button type="submit">sign in</button>
    </form>
  );
}

function App() {
  const [role, setRole] = useState<Role | null | undefined>(undefined);
  const { page, query } = useHash();
  useEffect(() => {
    setUnauthenticatedHandler(() => setRole(null));
    get<{ role: Role }>('/api/v1/session').then(
      (r) => setRole(r.role),
      () => setRole(null),
    );
  }, []);
  if (role === undefined) return null;
  if (role === null) return <SignIn onDone={setRole} />;
  const signOut = async () => {
    await del('/api/v1/session').catch(() => undefined);
    setRole(null);
  };
  return (
    <>
      <header>
        <span class="brand">dfs</span>
        <nav>
          {PAGES.map(([id, label]) => (
            <a key={id} href={`#/${id}`} class={page === id ? 'active' : ''}>{label}</a>
          ))}
        </nav>
        <span class="who" data-testid="role">{role}<button onClick={() => void signOut()}>sign out</button></span>
      </header>
      <main>
        {page === 'nodes' ? <NodesPage role={role} />
          : page === 'raft' ? <RaftPage />
          : page === 'events' ? <EventsPage />
          : page === 'protection' ? <ProtectionPage />
          : page === 'browse' ? <BrowsePage path={query.get('path') || '/'} role={role} />
          : page === 'audit' ? <AuditPage />
          : page === 'clients' ? <ClientsPage />
          : <OverviewPage />}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
