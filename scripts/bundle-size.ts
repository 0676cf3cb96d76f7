import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

// Prints what the browser downloads to show the first page, `/` → `/tasks`: index.html, the scripts and
// styles it references, and the task list's lazily loaded chunk with every chunk that one imports statically,
// raw and as sent (the precompressed files); fails when one of them would be sent uncompressed.
const DIST = "dist/web";
const TARGET_KB = 300;
const FIRST_PAGE_CHUNK = /^TaskListPage-[\w-]+\.js$/;

const html = readFileSync(path.join(DIST, "index.html"), "utf8");
const entry = [...html.matchAll(/(?:src|href)="\/?(assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1] as string);
const page = readdirSync(path.join(DIST, "assets")).find((f) => FIRST_PAGE_CHUNK.test(f));
if (!page) {
  console.error(`bundle-size: no chunk matching ${FIRST_PAGE_CHUNK} in ${DIST}/assets; was the console built?`);
  process.exit(1);
}

// Static imports only (`import{…}from"./x.js"`, `import"./x.js"`); `import("./x.js")` loads on demand.
const STATIC_IMPORT = /(?:\bfrom|\bimport)\s*["']\.\/([^"']+\.js)["']/g;
const files = new Set<string>();
const queue = [...entry, `assets/${page}`];
while (queue.length) {
  const file = queue.shift() as string;
  if (files.has(file)) continue;
  files.add(file);
  if (!file.endsWith(".js")) continue;
  const code = readFileSync(path.join(DIST, file), "utf8");
  for (const m of code.matchAll(STATIC_IMPORT)) queue.push(path.posix.join(path.posix.dirname(file), m[1] as string));
}

// What the server sends: the build's precompressed twin (scripts/precompress.ts), or the file itself.
const sent = (file: string, ext: ".br" | ".gz"): number => {
  const twin = path.join(DIST, `${file}${ext}`);
  return existsSync(twin) ? statSync(twin).size : statSync(path.join(DIST, file)).size;
};
let raw = 0;
let br = 0;
let gz = 0;
const uncompressed: string[] = [];
for (const f of ["index.html", ...files]) {
  const size = statSync(path.join(DIST, f)).size;
  raw += size;
  br += sent(f, ".br");
  gz += sent(f, ".gz");
  if (size >= 1024 && !(existsSync(path.join(DIST, `${f}.br`)) && existsSync(path.join(DIST, `${f}.gz`))))
    uncompressed.push(f);
}
const kb = (n: number) => (n / 1024).toFixed(1);
console.log(
  `console initial route (/tasks): ${files.size + 1} files, ${kb(raw)} KB raw, sent as ${kb(br)} KB brotli ` +
    `or ${kb(gz)} KB gzip (target ${TARGET_KB} KB gzip, ratio ${(gz / 1024 / TARGET_KB).toFixed(2)})`,
);
if (uncompressed.length) {
  console.error(
    `bundle-size: sent uncompressed (no .br/.gz twin; run scripts/precompress.ts): ${uncompressed.join(", ")}`,
  );
  process.exit(1);
}
if (gz / 1024 > TARGET_KB) {
  console.error(`bundle-size: the initial route is over its ${TARGET_KB} KB gzip budget`);
  process.exit(1);
}
