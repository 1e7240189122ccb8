/**
 * The dashboard's static files: `GET /` is the page, `/dashboard/*` its scripts and styles and
 * `/dashboard/vendor/*` uPlot from node_modules. They hold no data, so they are served without a
 * token; the page asks for one and sends it with each API call. A strict Content-Security-Policy
 * keeps the page to its own scripts and this server.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';

const here = path.dirname(fileURLToPath(import.meta.url));
const pageDir = path.join(here, '../dashboard');
const uplotDir = path.dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'));

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

/** Every file the page loads, by URL path (anything else is a 404: no path is built from the request). */
const FILES: Record<string, string> = {
  '/': path.join(pageDir, 'index.html'),
  ...Object.fromEntries(['app.js', 'api.js', 'dom.js', 'charts.js', 'runs.js', 'run.js', 'pipeline.js', 'style.css'].map((f) => [`/dashboard/${f}`, path.join(pageDir, f)])),
  '/dashboard/vendor/uPlot.iife.min.js': path.join(uplotDir, 'uPlot.iife.min.js'),
  '/dashboard/vendor/uPlot.min.css': path.join(uplotDir, 'uPlot.min.css'),
};

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/** Whether a request is for one of the dashboard's files (which need no token). */
export const isDashboardFile = (method: string, url: string): boolean => (method === 'GET' || method === 'HEAD') && Object.hasOwn(FILES, url.split('?')[0]);

export function addDashboardRoutes(app: FastifyInstance): void {
  // Read once: the files are part of the installed code, not data.
  const bodies = new Map(Object.entries(FILES).map(([url, file]) => [url, readFileSync(file)]));
  for (const [url, body] of bodies) {
    app.get(url, async (_req, reply: FastifyReply) => reply.headers({ ...SECURITY_HEADERS, 'content-type': TYPES[path.extname(FILES[url]) || '.html'] }).send(body));
  }
}
