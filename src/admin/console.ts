/**
 * Serves the web console: static files from the package's `console/` directory (no CDN, no build
 * step), read once at start-up. The pages call the admin API with the token the user logs in with;
 * the files themselves are public (they hold no data), like any login page.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Reply } from './reply.js';

/** `console/` at the package root: two levels up from both src/admin/ and dist/admin/. */
export const CONSOLE_DIR = fileURLToPath(new URL('../../console/', import.meta.url));

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json; charset=utf-8',
};

/** Scripts, styles and API calls only from this origin; never framed. */
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

export class ConsoleFiles {
  private readonly files = new Map<string, { type: string; body: string }>();

  constructor(dir: string = CONSOLE_DIR) {
    this.load(dir, '');
  }

  private load(dir: string, prefix: string): void {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return; // a package without the console still serves the API
    }
    for (const name of names) {
      const full = path.join(dir, name);
      if (statSync(full).isDirectory()) {
        this.load(full, `${prefix}${name}/`);
        continue;
      }
      const type = TYPES[path.extname(name)];
      if (type) this.files.set(`${prefix}${name}`, { type, body: readFileSync(full, 'utf8') });
    }
  }

  get size(): number {
    return this.files.size;
  }

  /** The reply for a GET of `urlPath`, or null when the path is not the console's. */
  serve(urlPath: string): Reply | null {
    if (urlPath === '/' || urlPath === '/console') return { status: 302, headers: { location: '/console/' }, body: '' };
    if (!urlPath.startsWith('/console/')) return null;
    const rel = urlPath.slice('/console/'.length) || 'index.html';
    // Only names read at start-up are served: no path is ever joined from the URL.
    const file = this.files.get(rel);
    if (!file) return null;
    return { status: 200, headers: { 'content-type': file.type, ...SECURITY_HEADERS }, body: file.body };
  }
}
