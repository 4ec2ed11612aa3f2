// @ts-check
/** Login: the admin token is checked with GET /api/v1/whoami and kept for this tab only. */
import { api, ApiError, saveSession } from '../api.js';
import { fill, h } from '../dom.js';
import { errorBox } from '../ui.js';

/**
 * Who the token belongs to. A server older than the whoami endpoint knows one admin token: a
 * token it accepts on the inventory is that one.
 * @param {string} token
 * @returns {Promise<{ name: string, role: 'admin' | 'viewer' }>}
 */
export async function identify(token) {
  try {
    const who = await api('GET', '/api/v1/whoami', { token });
    return { name: String(who.name), role: who.role === 'viewer' ? 'viewer' : 'admin' };
  } catch (err) {
    if (!(err instanceof ApiError && err.missingEndpoint)) throw err;
    await api('GET', '/api/v1/inventory?limit=1', { token });
    return { name: token === '' ? 'anonymous' : 'admin', role: 'admin' };
  }
}

/** @param {{ expired: boolean, onLogin: () => void }} opts */
export function renderLogin(opts) {
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'current-password', required: true, autofocus: true });
  const error = h('div', { class: 'login-error' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'login-card', 'aria-labelledby': 'login-title' },
    h('div', { class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, '◆'), 'tokenwarden'),
    h('h1', { id: 'login-title' }, 'Sign in to the console'),
    opts.expired ? h('p', { class: 'notice', role: 'status' }, 'Your session ended: the server no longer accepts that token. Sign in again.') : null,
    h('div', { class: 'field' }, h('label', { for: 'token' }, 'Admin token'), input, h('small', { class: 'muted' }, 'A token from admin.token or admin.tokens in the tokenwarden config.')),
    error,
    submit,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    fill(error);
    submit.disabled = true;
    try {
      const token = input.value.trim();
      const who = await identify(token);
      saveSession({ token, ...who });
      opts.onLogin();
    } catch (err) {
      fill(error, err instanceof ApiError && err.status === 401 ? h('div', { class: 'alert', role: 'alert' }, 'Error: the server does not accept this token.') : errorBox(err));
    } finally {
      submit.disabled = false;
    }
  });
  return h('div', { class: 'login-page' }, form);
}
