import { readFileSync } from "node:fs";
import path from "node:path";
import { gzipSync } from "node:zlib";

// Prints what the browser downloads for the first page: index.html and the scripts and styles it references.
const DIST = "dist/web";
const TARGET_KB = 300;
const html = readFileSync(path.join(DIST, "index.html"), "utf8");
const assets = [...html.matchAll(/(?:src|href)="\/?(assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1] as string);
let raw = Buffer.byteLength(html);
let gz = gzipSync(html).length;
for (const a of assets) {
  const body = readFileSync(path.join(DIST, a));
  raw += body.length;
  gz += gzipSync(body, { level: 9 }).length;
}
const kb = (n: number) => (n / 1024).toFixed(1);
console.log(
  `console initial route: ${assets.length + 1} files, ${kb(raw)} KB raw, ${kb(gz)} KB gzip ` +
    `(target ${TARGET_KB} KB gzip, ratio ${(gz / 1024 / TARGET_KB).toFixed(2)})`,
);
