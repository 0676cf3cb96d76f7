import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

// Runs after `vite build` (npm run build): writes a brotli (.br) and a gzip (.gz) twin of every text file
// of the built console, which the server sends to clients that accept them (src/server/serving/static.ts),
// and moves the source maps out of the served directory.

/** Text formats worth compressing; images other than SVG and fonts are compressed already. */
const COMPRESSIBLE = /\.(?:js|mjs|css|html|svg|json|txt|xml|webmanifest)$/i;

export interface CompressedFile {
  /** Relative to the directory, with forward slashes. */
  file: string;
  raw: number;
  br: number | null;
  gzip: number | null;
}

function walk(dir: string, base = dir): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const abs = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(abs, base));
    else out.push(path.relative(base, abs).split(path.sep).join("/"));
  }
  return out.sort();
}

/**
 * Compresses every compressible file in `dir` (brotli at its highest quality, gzip at level 9). A twin
 * that would not be smaller than the file is not written: the server then sends the file as it is.
 */
export function precompress(dir: string): CompressedFile[] {
  const results: CompressedFile[] = [];
  for (const file of walk(dir)) {
    if (!COMPRESSIBLE.test(file)) continue;
    const abs = path.join(dir, file);
    const body = readFileSync(abs);
    const br = brotliCompressSync(body, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
        [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
        [constants.BROTLI_PARAM_SIZE_HINT]: body.length,
      },
    });
    const gz = gzipSync(body, { level: 9 });
    const keep = (twin: Buffer, ext: string): number | null => {
      if (twin.length >= body.length) return null;
      writeFileSync(`${abs}${ext}`, twin);
      return twin.length;
    };
    results.push({ file, raw: body.length, br: keep(br, ".br"), gzip: keep(gz, ".gz") });
  }
  return results;
}

/**
 * Moves every `.map` file from `dir` to `mapsDir` (same relative paths): source maps stay available to
 * whoever runs the server and are not served to the world with the console.
 */
export function moveSourceMaps(dir: string, mapsDir: string): string[] {
  const moved: string[] = [];
  for (const file of walk(dir)) {
    if (!file.endsWith(".map")) continue;
    const target = path.join(mapsDir, file);
    mkdirSync(path.dirname(target), { recursive: true });
    renameSync(path.join(dir, file), target);
    moved.push(file);
  }
  return moved;
}

function main(): void {
  const dir = process.argv[2] ?? "dist/web";
  const mapsDir = process.argv[3] ?? "dist/sourcemaps";
  if (!statSync(path.join(dir, "index.html"), { throwIfNoEntry: false })) {
    console.error(`precompress: ${dir}/index.html not found; run vite build first`);
    process.exit(1);
  }
  // The maps of this build only: an older build's would not match its files.
  rmSync(mapsDir, { recursive: true, force: true });
  const maps = moveSourceMaps(dir, mapsDir);
  const files = precompress(dir);
  const sum = (pick: (f: CompressedFile) => number) => files.reduce((n, f) => n + pick(f), 0);
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
  console.log(
    `precompress: ${files.length} files, ${kb(sum((f) => f.raw))} raw → ${kb(sum((f) => f.br ?? f.raw))} brotli, ` +
      `${kb(sum((f) => f.gzip ?? f.raw))} gzip; ${maps.length} source maps moved to ${mapsDir}`,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) main();
