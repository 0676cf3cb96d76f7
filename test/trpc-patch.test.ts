/**
 * patches/@trpc+server+11.19.0.patch edits build chunks of @trpc/server whose file names carry a
 * content hash. If `npm install` brings another build (a new version, a re-hashed chunk, the CommonJS
 * build) or patch-package does not apply the patch, the server would run tRPC's own code without a
 * word. This test starts the server's module graph in a Node process of its own, the way `npm start`
 * does (`--import tsx`), records the source of every @trpc/server module Node loads, and checks that
 * each file the patch edits was loaded, with every line the patch adds and none it removes.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";

const root = path.resolve(import.meta.dirname, "..");
const patchFile = path.join(root, "patches", "@trpc+server+11.19.0.patch");

interface FileEdit {
  /** Path inside the package, e.g. dist/ws-C7ZOJJeA.mjs. */
  file: string;
  added: string[];
  removed: string[];
}

/** The files a unified diff edits, with the lines it adds and removes (trimmed, blank lines left out). */
function parsePatch(text: string): FileEdit[] {
  const edits: FileEdit[] = [];
  let current: FileEdit | undefined;
  for (const line of text.split("\n")) {
    const header = /^\+\+\+ b\/node_modules\/@trpc\/server\/(.+)$/.exec(line);
    if (header) {
      current = { file: header[1] as string, added: [], removed: [] };
      edits.push(current);
    } else if (line.startsWith("--- ") || line.startsWith("diff ") || line.startsWith("index ")) {
    } else if (current && line.startsWith("+") && line.slice(1).trim()) {
      current.added.push(line.slice(1).trim());
    } else if (current && line.startsWith("-") && line.slice(1).trim()) {
      current.removed.push(line.slice(1).trim());
    }
  }
  // Short removed lines (`});`) occur elsewhere in the file, and a removed line the patch adds back
  // says nothing either: only the others tell the old code from the new.
  for (const e of edits) e.removed = e.removed.filter((l) => l.length >= 20 && !e.added.includes(l));
  return edits;
}

/** The hooks module: records the URL and source of every @trpc/server module Node loads. */
const HOOKS = `
import fs from "node:fs";
export async function load(url, context, nextLoad) {
  const result = await nextLoad(url, context);
  if (url.includes("/node_modules/@trpc/server/")) {
    const source = result.source == null ? null : Buffer.from(result.source).toString("utf8");
    fs.appendFileSync(process.env.TRPC_PATCH_RECORD, JSON.stringify({ url, format: result.format, source }) + "\\n");
  }
  return result;
}
`;

interface Loaded {
  url: string;
  format: string;
  source: string | null;
}

/** Imports the server's app module (which imports tRPC as the server does) and returns what Node loaded of @trpc/server. */
function loadServerGraph(): Loaded[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trpc-patch-"));
  try {
    const hooks = path.join(dir, "hooks.mjs");
    fs.writeFileSync(hooks, HOOKS);
    const register = path.join(dir, "register.mjs");
    fs.writeFileSync(
      register,
      `import { register } from "node:module";\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`,
    );
    const record = path.join(dir, "loaded.ndjson");
    const app = pathToFileURL(path.join(root, "src", "server", "app.ts")).href;
    const run = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "--import",
        pathToFileURL(register).href,
        "--input-type=module",
        "-e",
        `await import(${JSON.stringify(app)});`,
      ],
      { cwd: root, env: { ...process.env, TRPC_PATCH_RECORD: record }, encoding: "utf8", timeout: 60_000 },
    );
    expect(run.status, `importing src/server/app.ts failed: ${run.stderr}`).toBe(0);
    return fs
      .readFileSync(record, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Loaded);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe("the tRPC patch", () => {
  it("is what Node loads for @trpc/server when the server starts", () => {
    const edits = parsePatch(fs.readFileSync(patchFile, "utf8"));
    expect(edits.map((e) => e.file).sort()).toEqual(["dist/tracked-D4jU_Hb3.mjs", "dist/ws-C7ZOJJeA.mjs"]);
    for (const e of edits) expect(e.added.length * e.removed.length).toBeGreaterThan(0);

    const loaded = loadServerGraph();
    // The server loads tRPC's ES module build only: the patch does not edit the CommonJS one.
    expect(loaded.length).toBeGreaterThan(0);
    expect(loaded.filter((m) => m.format !== "module").map((m) => m.url)).toEqual([]);
    for (const e of edits) {
      const module = loaded.find((m) => m.url.endsWith(`/node_modules/@trpc/server/${e.file}`));
      expect(
        module,
        `${e.file} was not loaded: tRPC's build changed and the patch no longer applies to the code that runs`,
      ).toBeDefined();
      const source = module?.source ?? "";
      for (const line of e.added) expect(source, `${e.file} lacks a line the patch adds`).toContain(line);
      for (const line of e.removed) expect(source, `${e.file} still has a line the patch removes`).not.toContain(line);
    }
    // The subscription loop's patched wait is in the WebSocket adapter the server imports.
    const ws = loaded.find((m) => m.url.includes("/ws-C7ZOJJeA.mjs"));
    expect(ws?.source).toContain("await new Promise(nextOrAbort)");
    expect(ws?.source).not.toContain("Unpromise.race([iterator.next()");
  });
});
