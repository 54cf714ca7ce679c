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
import type { Signed } from './context.js';
import { AlertsView } from './views/alerts.js';
import { ApprovalsView } from './views/approvals.js';
import { AuditView } from './views/audit.js';
import { EnrolView } from './views/enrol.js';
import { GovernanceView } from './views/governance.js';
import { HomeView } from './views/home.js';
import { IntentView } from './views/intent.js';
import { ProposalsView } from './views/proposals.js';
import { RequestView } from './views/request.js';
import { SignInView } from './views/signin.js';

type Route =
  | { readonly view: 'home' }
  | { readonly view: 'enrol' }
  | { readonly view: 'approvals' }
  | { readonly view: 'request' }
  | { readonly view: 'governance' }
  | { readonly view: 'proposals' }
  | { readonly view: 'audit' }
  | { readonly view: 'alerts' }
  | { readonly view: 'intent'; readonly id: string };

function routeOf(hash: string): Route {
  if (hash === '#/enrol') return { view: 'enrol' };
  if (hash === '#/approvals') return { view: 'approvals' };
  if (hash === '#/request') return { view: 'request' };
  if (hash === '#/governance') return { view: 'governance' };
  if (hash === '#/proposals') return { view: 'proposals' };
  if (hash === '#/audit') return { view: 'audit' };
  if (hash === '#/alerts') return { view: 'alerts' };
  const m = /^#\/intent\/([0-9a-f]{64})$/.exec(hash);
  if (m !== null) return { view: 'intent', id: m[1] as string };
  return { view: 'home' };
}

const LINKS: readonly [Route['view'], string, string][] = [
  ['home', '#/', 'Console'],
  ['approvals', '#/approvals', 'Pending approvals'],
  ['request', '#/request', 'Request'],
  ['governance', '#/governance', 'Governance'],
  ['proposals', '#/proposals', 'Proposals'],
  ['alerts', '#/alerts', 'Alerts'],
  ['audit', '#/audit', 'Audit'],
  ['enrol', '#/enrol', 'Enrol a passkey'],
];

function App() {
  const [route, setRoute] = useState<Route>(() => routeOf(location.hash));
  const [signed, setSigned] = useState<Signed | null>(null);
  useEffect(() => {
    const onHash = () => setRoute(routeOf(location.hash));
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  const needsSession = route.view !== 'home' && route.view !== 'enrol';
  let body: preact.JSX.Element;
  if (needsSession && (signed === null || signed.api.session.expiresAt <= Date.now())) {
    body = <SignInView onSignedIn={setSigned} />;
  } else if (route.view === 'enrol') body = <EnrolView />;
  else if (route.view === 'approvals') body = <ApprovalsView s={signed!} />;
  else if (route.view === 'request') body = <RequestView s={signed!} />;
  else if (route.view === 'governance') body = <GovernanceView s={signed!} />;
  else if (route.view === 'proposals') body = <ProposalsView s={signed!} />;
  else if (route.view === 'audit') body = <AuditView s={signed!} />;
  else if (route.view === 'alerts') body = <AlertsView s={signed!} />;
  else if (route.view === 'intent') body = <IntentView s={signed!} id={route.id} />;
  else body = <HomeView />;
  return (
    <>
      <header class="top">
        <a class="brand" href="#/">
          Custos
        </a>
        <nav aria-label="Main">
          {LINKS.map(([view, href, text]) => (
            <a key={view} href={href} aria-current={route.view === view ? 'page' : undefined}>
              {text}
            </a>
          ))}
        </nav>
        {signed === null ? null : (
          <span class="who">
            {signed.device.member}/{signed.device.device} · governance seq {signed.state.seq} verified
          </span>
        )}
      </header>
      <main id="main">{body}</main>
    </>
  );
}

const root = document.getElementById('app');
if (root !== null) render(<App />, root);
