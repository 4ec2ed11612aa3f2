// @ts-check
/** The console shell: login gate, navigation, hash router, the signed-in user and logout. */
import { loadSession, query, saveSession, setUnauthorizedHandler } from './api.js';
import { fill, h } from './dom.js';
import { badge, errorBox } from './ui.js';
import { renderLogin, identify } from './pages/login.js';
import { renderDashboard } from './pages/dashboard.js';
import { renderInventory } from './pages/inventory.js';
import { renderConsumers } from './pages/consumers.js';
import { renderOwners } from './pages/owners.js';
import { renderResources } from './pages/resources.js';
import { renderPolicies } from './pages/policies.js';
import { renderBudgets, renderTemplates } from './pages/budgets.js';
import { renderWouldBlock } from './pages/would-block.js';
import { renderExports } from './pages/exports.js';
import { renderAudit } from './pages/audit.js';

/** @type {Array<[string, string, import('./types.js').Page]>} path, title, page */
const ROUTES = [
  ['dashboard', 'Dashboard', renderDashboard],
  ['inventory', 'Inventory', renderInventory],
  ['consumers', 'Consumers', renderConsumers],
  ['owners', 'Owners', renderOwners],
  ['resources', 'Resources', renderResources],
  ['policies', 'Policies', renderPolicies],
  ['budgets', 'Budgets', renderBudgets],
  ['templates', 'Templates', renderTemplates],
  ['would-block', 'Would-block', renderWouldBlock],
  ['exports', 'Exports', renderExports],
  ['audit', 'Audit log', renderAudit],
];

const app = /** @type {HTMLElement} */ (document.getElementById('app'));

/** @param {string} path @param {Record<string, string | number | undefined>} [params] */
function go(path, params = {}) {
  const target = `#/${path}${query(params)}`;
  if (location.hash === target) void route();
  else location.hash = target;
}

function logout() {
  saveSession(null);
  go('login');
}

// Every panel of a page can get the 401 of a revoked token: the first one signs out, the rest do nothing.
setUnauthorizedHandler(() => {
  if (loadSession() === null) return;
  saveSession(null);
  go('login', { expired: 1 });
});

/** @param {import('./api.js').Session} session @param {string} current */
function shell(session, current) {
  const nav = h(
    'nav',
    { class: 'sidebar', 'aria-label': 'Main' },
    h('div', { class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, '◆'), 'tokenwarden'),
    h(
      'ul',
      {},
      ROUTES.map(([path, title]) => h('li', {}, h('a', { href: `#/${path}`, 'aria-current': path === current ? 'page' : undefined }, title))),
    ),
  );
  const user = h(
    'div',
    { class: 'user' },
    h('span', { class: 'user-name', 'data-testid': 'user-name' }, session.name),
    badge(session.role),
    h('button', { type: 'button', class: 'btn btn-ghost', onclick: logout }, 'Log out'),
  );
  const main = h('main', { class: 'content', id: 'content', tabindex: '-1' });
  fill(app, nav, h('div', { class: 'main-col' }, h('div', { class: 'topbar' }, user), main));
  return main;
}

async function route() {
  const hash = location.hash.replace(/^#\/?/, '');
  const q = hash.indexOf('?');
  const path = q === -1 ? hash : hash.slice(0, q);
  const params = new URLSearchParams(q === -1 ? '' : hash.slice(q + 1));
  let session = loadSession();
  if (session === null) session = await openSession();
  if (path === 'login' || session === null) {
    fill(app, renderLogin({ expired: params.has('expired'), onLogin: () => go('dashboard') }));
    return;
  }
  const found = ROUTES.find(([p]) => p === path);
  if (!found) {
    go('dashboard');
    return;
  }
  document.title = `${found[1]} · tokenwarden`;
  const main = shell(session, found[0]);
  try {
    await found[2](main, { session, canWrite: session.role === 'admin', params, go });
  } catch (err) {
    main.append(errorBox(err));
  }
  // Screen readers and keyboard users land on the new page, not on the link they left.
  main.focus({ preventScroll: true });
}

/**
 * Without a stored session: a server without admin tokens (loopback only) lets anyone in as
 * `anonymous`; otherwise (a 401, or anything unexpected such as a proxy's HTML error page) the
 * login page asks for a token, where a failed sign-in shows the error.
 * @returns {Promise<import('./api.js').Session | null>}
 */
async function openSession() {
  try {
    const who = await identify('');
    const session = { token: '', ...who };
    saveSession(session);
    return session;
  } catch {
    return null;
  }
}

window.addEventListener('hashchange', () => void route());
void route();
