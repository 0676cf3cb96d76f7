import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createWorkspace, type Workspace, WorkspacePathError } from "../src/worker/workspace.js";

let base: string;
let outside: string;
let ws: Workspace;
const TASK = "0b0e3f6c-2f7e-4a47-9d55-1d8d3c1f7a10";

beforeEach(async () => {
  base = mkdtempSync(path.join(os.tmpdir(), "ws-test-"));
  outside = mkdtempSync(path.join(os.tmpdir(), "ws-outside-"));
  writeFileSync(path.join(outside, "secret.txt"), "top secret\n");
  ws = await createWorkspace(base, TASK, 1);
});
afterEach(() => {
  rmSync(base, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

async function refused(op: Promise<unknown>, message: RegExp) {
  const err = await op.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkspacePathError);
  expect((err as Error).message).toMatch(message);
}

describe("workspace file API", () => {
  it("lives in <workspacesDir>/<taskId>/<attempt> and starts empty, even over a leftover", async () => {
    expect(ws.root).toBe(path.join(realBase(), TASK, "1"));
    await ws.write("left/over.txt", "x");
    const again = await createWorkspace(base, TASK, 1);
    expect(await again.list()).toEqual([]);
  });

  it("writes, reads, lists and removes files inside, creating parent directories", async () => {
    await ws.write("src/app/main.ts", "export {};\n");
    await ws.write("./README.md", Buffer.from("hello"));
    expect(await ws.readText("src/app/main.ts")).toBe("export {};\n");
    expect((await ws.read("README.md")).toString()).toBe("hello");
    expect(await ws.list()).toEqual([
      { path: "README.md", size: 5 },
      { path: "src/app/main.ts", size: 11 },
    ]);
    expect(await ws.list("src")).toEqual([{ path: "src/app/main.ts", size: 11 }]);
    await ws.remove("src");
    expect(await ws.list()).toEqual([{ path: "README.md", size: 5 }]);
    expect(await ws.resolve("a/./b//c")).toBe(path.join(ws.root, "a", "b", "c"));
  });

  it.each([
    ["../x", /'\.\.' segments/],
    ["a/../../x", /'\.\.' segments/],
    ["a/..", /'\.\.' segments/],
    ["/etc/passwd", /must be relative/],
    ["C:\\Windows\\win.ini", /backslash|must be relative/],
    ["..\\x", /backslash/],
    ["%2e%2e/x", /URL-encoded/],
    ["%2E%2E%2Fx", /URL-encoded/],
    ["a%2f..%2f..%2fx", /URL-encoded/],
    ["%252e%252e/x", /URL-encoded/],
    ["%2fetc%2fpasswd", /URL-encoded/],
    ["a\0b", /NUL/],
    ["a%00b", /URL-encoded|NUL/],
    ["x".repeat(1001), /longer than 1000/],
    // The decode loop used to stop at the first escape it could not decode, leaving the layers below unchecked.
    ["%252e%252e/%252e%252e/etc/passwd%ff", /'%' escape that does not decode/],
    ["%ff", /'%' escape that does not decode/],
    ["a%c3%28b", /'%' escape that does not decode/],
    ["%25252525252e%25252525252e/x", /URL-encoded more than 5 times/],
    ["y".repeat(300), /longer than the file system allows/],
    [`a/${"z".repeat(256)}/b.txt`, /longer than the file system allows/],
  ])("refuses %j on every operation", async (bad, message) => {
    await refused(ws.resolve(bad), message);
    await refused(ws.read(bad), message);
    await refused(ws.write(bad, "pwned"), message);
    await refused(ws.remove(bad), message);
    await refused(ws.list(bad), message);
  });

  it("refuses nothing that is merely unusual: percent signs, escapes of ordinary letters and dots inside names", async () => {
    await ws.write("100%.txt", "a");
    await ws.write("..hidden/a..b", "b");
    await ws.write("caf%C3%A9.txt", "c");
    expect((await ws.list()).map((f) => f.path)).toEqual(["..hidden/a..b", "100%.txt", "caf%C3%A9.txt"]);
  });

  it("maps the file system's refusals to its own error: a file used as a directory", async () => {
    await ws.write("file.txt", "x");
    await refused(ws.write("file.txt/inner.txt", "y"), /goes through a file as if it were a directory/);
    await refused(ws.read("file.txt/inner.txt"), /goes through a file as if it were a directory|outside|exist/);
  });

  it("refuses a symlink to a file outside: no read, no write through it", async () => {
    symlinkSync(path.join(outside, "secret.txt"), path.join(ws.root, "leak"));
    await refused(ws.read("leak"), /outside the workspace through a symlink/);
    await refused(ws.write("leak", "pwned"), /outside the workspace through a symlink/);
    expect(readFileSync(path.join(outside, "secret.txt"), "utf8")).toBe("top secret\n");
    // list() does not follow it either.
    expect(await ws.list()).toEqual([]);
  });

  it("refuses a symlinked directory that escapes, also for paths below it that do not exist yet", async () => {
    symlinkSync(outside, path.join(ws.root, "out"));
    await refused(ws.read("out/secret.txt"), /outside the workspace/);
    await refused(ws.write("out/new/deep.txt", "pwned"), /outside the workspace/);
    await refused(ws.remove("out/secret.txt"), /outside the workspace/);
    await refused(ws.list("out"), /outside the workspace/);
    expect(existsSync(path.join(outside, "new"))).toBe(false);
    expect(existsSync(path.join(outside, "secret.txt"))).toBe(true);
  });

  it("refuses a dangling symlink, which a write would otherwise follow to create a file outside", async () => {
    symlinkSync(path.join(outside, "created-by-attack.txt"), path.join(ws.root, "dangling"));
    await refused(ws.write("dangling", "pwned"), /symlink/);
    expect(existsSync(path.join(outside, "created-by-attack.txt"))).toBe(false);
  });

  it("refuses a symlink that escapes through a relative target and one nested deeper", async () => {
    mkdirSync(path.join(ws.root, "a", "b"), { recursive: true });
    symlinkSync("../../../../..", path.join(ws.root, "a", "b", "up"));
    await refused(ws.read("a/b/up/etc/passwd"), /outside the workspace/);
    await refused(ws.write("a/b/up/x", "pwned"), /outside the workspace/);
  });

  it("allows a symlink that stays inside", async () => {
    await ws.write("real/file.txt", "inside");
    symlinkSync(path.join(ws.root, "real"), path.join(ws.root, "alias"));
    expect(await ws.readText("alias/file.txt")).toBe("inside");
  });

  it("rejects invalid task ids and attempts for the directory name", async () => {
    await expect(createWorkspace(base, "../../etc", 1)).rejects.toBeInstanceOf(WorkspacePathError);
    await expect(createWorkspace(base, TASK, 0)).rejects.toBeInstanceOf(WorkspacePathError);
  });

  it("refuses to read or write the root itself", async () => {
    await refused(ws.write("", "x"), /root/);
    await refused(ws.read("."), /root/);
  });
});

function realBase() {
  return realpathSync(base);
}
