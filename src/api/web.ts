import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../core/errors.ts';

/**
 * The operator panel (/admin/) and the Mini App (/app/): single-page apps built by web/build.ts
 * into dist/web (`npm start` builds them first). An app's hashed assets never change, so they are
 * cached for a year; its index.html is revalidated on every load, so a new build is seen at once.
 * Every path under an app that is not a file is one of its pages: the index answers it.
 */

export const WEB_DIST = fileURLToPath(new URL('../../dist/web', import.meta.url));

const IMMUTABLE = 'public, max-age=31536000, immutable';
const REVALIDATE = 'no-cache';

interface WebApp {
  name: 'admin' | 'app';
  /** Content-Security-Policy of its pages: its own scripts only, and the Telegram parts it uses. */
  csp: string;
  /** Who may frame it: nobody for the panel; Telegram's web clients for the Mini App. */
  frameable: boolean;
}

const common = [
  "default-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "connect-src 'self'",
  // Mantine (the panel) and React style attributes set inline styles; no inline script runs.
  "style-src 'self' 'unsafe-inline'",
];

const apps: WebApp[] = [
  {
    name: 'admin',
    csp: [
      ...common,
      // The Telegram Login Widget: its script, its frame, the operator's photo.
      "script-src 'self' https://telegram.org",
      'frame-src https://oauth.telegram.org',
      "img-src 'self' data: https://t.me https://*.telegram.org",
      "frame-ancestors 'none'",
    ].join('; '),
    frameable: false,
  },
  {
    name: 'app',
    csp: [
      ...common,
      "script-src 'self' https://telegram.org",
      "img-src 'self' data: blob:",
      'frame-ancestors https://web.telegram.org',
    ].join('; '),
    frameable: true,
  },
];

function pageHeaders(reply: FastifyReply, app: WebApp): void {
  reply.header('content-security-policy', app.csp);
  reply.header('cache-control', REVALIDATE);
  // The CSP's frame-ancestors says who may frame the page; helmet's blanket SAMEORIGIN would
  // also keep the Mini App out of Telegram's web client.
  if (app.frameable) reply.removeHeader('x-frame-options');
  // The Telegram Login Widget opens its confirmation in a popup window.
  reply.header('cross-origin-opener-policy', 'same-origin-allow-popups');
}

/** The app's page, or null when it is not built (or a build is swapping it in just now). */
function builtIndex(root: string): Buffer | null {
  try {
    return readFileSync(join(root, 'index.html'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** Serves each built app that is there; answers their names. */
export async function registerWebApps(app: FastifyInstance, dist = WEB_DIST): Promise<string[]> {
  const served: string[] = [];
  for (const web of apps) {
    const root = join(dist, web.name);
    const index = builtIndex(root);
    if (index === null) continue;
    served.push(web.name);
    await app.register(async (scope) => {
      await scope.register(fastifyStatic, {
        root,
        prefix: `/${web.name}/`,
        // One route per built file (read at start), so the page fallback below can own the rest.
        wildcard: false,
        index: false,
        cacheControl: false,
        // web/build.ts leaves .br and .gz copies beside the text assets.
        preCompressed: true,
        setHeaders: (reply, path) => {
          reply.header('cache-control', path.endsWith('.html') ? REVALIDATE : IMMUTABLE);
        },
      });
      const page = async (request: FastifyRequest, reply: FastifyReply) => {
        const path = request.url.split('?')[0] ?? '';
        // A missing asset is a 404, not the page (a stale build's chunk must not parse as HTML).
        if (path.startsWith(`/${web.name}/assets/`))
          throw new AppError('not_found', `No file ${path}.`);
        pageHeaders(reply, web);
        return reply.type('text/html; charset=utf-8').send(index);
      };
      scope.get(`/${web.name}`, { schema: { hide: true } }, (_request, reply) =>
        reply.redirect(`/${web.name}/`, 301),
      );
      scope.get(`/${web.name}/`, { schema: { hide: true } }, page);
      scope.get(`/${web.name}/*`, { schema: { hide: true } }, page);
    });
  }
  return served;
}
