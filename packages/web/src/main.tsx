/**
 * The approver console (issue 10): a single page, served by the coordinator
 * and trusted for nothing. Whatever it shows about money it computed here,
 * from signed objects it verified itself (governance from the pinned genesis,
 * the requester's signature, the transaction decoded from its PSBT); whatever
 * it changes is signed by a passkey on this device, over the object's digest,
 * and checked again by the coordinator and by every signer. A console serving
 * an attacker's script can therefore get signed at most what the policy
 * already allows.
 *
 * Navigation is by the URL's fragment (#/enrol, ...), so the coordinator
 * serves one HTML file and nothing else is ever requested by path.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { EnrolView } from './views/enrol.js';
import { HomeView } from './views/home.js';

type Route = { readonly view: 'home' } | { readonly view: 'enrol' };

function routeOf(hash: string): Route {
  if (hash === '#/enrol') return { view: 'enrol' };
  return { view: 'home' };
}

function App() {
  const [route, setRoute] = useState<Route>(() => routeOf(location.hash));
  useEffect(() => {
    const onHash = () => setRoute(routeOf(location.hash));
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  return (
    <>
      <header class="top">
        <a class="brand" href="#/">
          Custos
        </a>
        <nav aria-label="Main">
          <a href="#/" aria-current={route.view === 'home' ? 'page' : undefined}>
            Console
          </a>
          <a href="#/enrol" aria-current={route.view === 'enrol' ? 'page' : undefined}>
            Enrol a passkey
          </a>
        </nav>
      </header>
      <main id="main">{route.view === 'enrol' ? <EnrolView /> : <HomeView />}</main>
    </>
  );
}

const root = document.getElementById('app');
if (root !== null) render(<App />, root);
