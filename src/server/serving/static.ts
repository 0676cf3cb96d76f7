import type http from "node:http";
import sirv from "sirv";

type Middleware = (req: http.IncomingMessage, res: http.ServerResponse, next: () => void) => void;

/** Vite writes every built script, style and font here under a content hash: a changed file gets a new name. */
const HASHED_ASSETS = /^\/assets\/[^/]+-[\w-]{8,}\.[a-z0-9]+$/i;
export const IMMUTABLE = "public, max-age=31536000, immutable";
/** index.html (and the SPA's routes, which answer with it) and unhashed files: revalidated by ETag on every use. */
export const REVALIDATE = "no-cache";

/** How long a browser may keep the console file at `pathname` (before any fallback to index.html). */
export function cachePolicy(pathname: string): string {
  return HASHED_ASSETS.test(pathname) ? IMMUTABLE : REVALIDATE;
}

/**
 * The built console in `dir`: the precompressed `.br`/`.gz` twin a client accepts (the build writes
 * them, scripts/precompress.ts), hashed assets cached for a year, everything else revalidated, every
 * client route answered with index.html. Source maps are never served, even if a build left one here.
 */
export function consoleFiles(dir: string): Middleware {
  const files = sirv(dir, { single: true, etag: true, brotli: true, gzip: true });
  return (req, res, next) => {
    const pathname = (req.url ?? "/").split("?")[0] ?? "/";
    if (pathname.endsWith(".map")) return next();
    // Set before sirv runs, so its 304 answers carry the policy too (sirv keeps a header already set).
    res.setHeader("Cache-Control", cachePolicy(pathname));
    files(req, res, () => {
      res.setHeader("Cache-Control", "no-store");
      next();
    });
  };
}
