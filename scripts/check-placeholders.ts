import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { scanForPlaceholders } from "../src/server/council/placeholders.js";

// The project holds itself to the council's own rule: no placeholder in the product's sources.
const ROOT = "src";
const SKIP_DIRS = new Set(["generated", "node_modules"]);
const SELF = path.join("src", "server", "council", "placeholders.ts");
const SOURCE = /\.(ts|tsx|js|jsx|css|html)$/;

function* files(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!SKIP_DIRS.has(entry.name)) yield* files(p);
    } else if (SOURCE.test(entry.name) && p !== SELF) yield p;
  }
}

let scanned = 0;
const findings = [];
for (const file of files(ROOT)) {
  scanned++;
  findings.push(...scanForPlaceholders(file, readFileSync(file, "utf8")));
}
for (const f of findings) console.error(`${f.path}:${f.line}  [${f.pattern}]  ${f.snippet}`);
console.log(`placeholder scan: ${scanned} files, ${findings.length} findings`);
process.exit(findings.length ? 1 : 0);
