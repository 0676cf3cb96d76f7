import { constants as fsConstants } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";

/**
 * A per-task workspace: one directory per task attempt, and a file API that can only reach inside it.
 *
 * Every path goes through `resolve`, which refuses, with a `WorkspacePathError`:
 * - empty paths (for anything but `list`), NUL bytes, backslashes and paths longer than 1,000 characters;
 * - absolute paths (`/etc/passwd`, `C:\…`);
 * - any `..` segment, and URL-encoded dots, slashes, backslashes or NULs (`%2e%2e/x`, `a%2fb`, double-encoded
 *   `%252e`), so a path that some later layer decodes cannot turn into a traversal: every layer of decoding is
 *   checked down to a fixpoint, and an escape that does not decode (`%ff`) or a sixth layer is refused;
 * - names the file system refuses (a segment over 255 bytes, a file used as a directory…), as their own clear error;
 * - symlinks that lead outside: the nearest existing ancestor of the target (and the target itself when it exists)
 *   is resolved to its real path, which must lie inside the workspace's real root; a dangling symlink is refused
 *   because following it on write would create a file wherever it points.
 * Writes also open the final component with O_NOFOLLOW, so a symlink planted between check and write is not followed.
 */

export class WorkspacePathError extends Error {
  override readonly name = "WorkspacePathError";
  constructor(
    message: string,
    /** The path as the caller gave it. */
    readonly requestedPath: string,
  ) {
    super(message);
  }
}

export interface WorkspaceFile {
  /** Relative to the workspace root, with `/` separators. */
  path: string;
  size: number;
}

export interface Workspace {
  /** Real path of the workspace directory. */
  readonly root: string;
  /** The absolute real path `rel` names inside the workspace; throws `WorkspacePathError` when it would leave it. */
  resolve(rel: string): Promise<string>;
  read(rel: string): Promise<Buffer>;
  readText(rel: string): Promise<string>;
  /** Creates parent directories as needed; replaces an existing file. */
  write(rel: string, content: string | Uint8Array): Promise<void>;
  /** Removes a file or a directory tree; a missing path is not an error. */
  remove(rel: string): Promise<void>;
  /** Regular files under `rel` (default: the whole workspace), recursively, sorted; symlinks are not followed. */
  list(rel?: string): Promise<WorkspaceFile[]>;
}

const MAX_PATH_CHARS = 1_000;
/** NAME_MAX on Linux file systems, in bytes. */
const MAX_SEGMENT_BYTES = 255;

const MAX_DECODE_LAYERS = 5;
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/**
 * One layer of URL decoding: every run of `%XX` escapes becomes the UTF-8 text its bytes spell. A `%` not followed
 * by two hex digits is an ordinary character (`100%.txt`). Escapes whose bytes are not valid UTF-8 (`%ff`) throw:
 * a path that some later layer might decode differently is refused rather than guessed at.
 */
function decodeOnce(p: string, rel: string): string {
  return p.replace(/(?:%[0-9a-fA-F]{2})+/g, (run) => {
    const bytes = Uint8Array.from(run.slice(1).split("%"), (h) => Number.parseInt(h, 16));
    try {
      return utf8Strict.decode(bytes);
    } catch {
      throw new WorkspacePathError(`Workspace path contains a '%' escape that does not decode to text: ${rel}`, rel);
    }
  });
}

/** The path and each of its decodings, down to a fixpoint; a path still changing after five layers is refused. */
function decodeLayers(p: string): string[] {
  const layers = [p];
  let current = p;
  for (let i = 0; ; i++) {
    const next = decodeOnce(current, p);
    if (next === current) return layers;
    if (i === MAX_DECODE_LAYERS) {
      throw new WorkspacePathError(
        `Workspace path is URL-encoded more than ${MAX_DECODE_LAYERS} times over; refusing it: ${p}`,
        p,
      );
    }
    layers.push(next);
    current = next;
  }
}

/** Lexical checks; returns the normalised relative path (`""` for the root itself). */
export function normalizeWorkspacePath(rel: string): string {
  if (typeof rel !== "string") throw new WorkspacePathError("Workspace path must be a string", String(rel));
  if (rel.length > MAX_PATH_CHARS) {
    throw new WorkspacePathError(`Workspace path is longer than ${MAX_PATH_CHARS} characters`, rel);
  }
  for (const layer of decodeLayers(rel)) {
    const encoded = layer !== rel ? " (after URL-decoding)" : "";
    // An encoded dot, slash, backslash or NUL has no business in a file name and is how traversal hides.
    if (/%(2e|2f|5c|00)/i.test(layer)) {
      throw new WorkspacePathError(`Workspace path contains URL-encoded '.', '/', '\\' or NUL${encoded}: ${rel}`, rel);
    }
    if (layer.includes("\0")) throw new WorkspacePathError(`Workspace path contains a NUL byte${encoded}`, rel);
    if (layer.includes("\\")) throw new WorkspacePathError(`Workspace path contains a backslash${encoded}`, rel);
    if (layer.startsWith("/") || /^[a-zA-Z]:/.test(layer)) {
      throw new WorkspacePathError(`Workspace path must be relative, got an absolute path${encoded}: ${rel}`, rel);
    }
    if (layer.split("/").includes("..")) {
      throw new WorkspacePathError(`Workspace path must not contain '..' segments${encoded}: ${rel}`, rel);
    }
  }
  const segments = rel.split("/").filter((s) => s !== "" && s !== ".");
  // Checked here too: the file system reports ENAMETOOLONG only once it gets that far, not under a missing parent.
  if (segments.some((s) => Buffer.byteLength(s) > MAX_SEGMENT_BYTES)) {
    throw new WorkspacePathError(`${ERRNO_MESSAGES.ENAMETOOLONG}: ${rel.slice(0, 200)}`, rel);
  }
  return segments.join("/");
}

const isInside = (root: string, p: string) => p === root || p.startsWith(root + path.sep);

function errnoCode(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err ? String((err as { code: unknown }).code) : undefined;
}

/** What the file system's refusals mean for a workspace path; anything else (ENOENT on read, EIO…) passes through. */
const ERRNO_MESSAGES: Record<string, string> = {
  ENAMETOOLONG: "Workspace path has a name longer than the file system allows (255 bytes per segment)",
  ELOOP: "Workspace path goes through too many symlinks (a loop?)",
  ENOTDIR: "Workspace path goes through a file as if it were a directory",
  EISDIR: "Workspace path names a directory where a file is expected",
  EACCES: "Workspace path is not accessible (permission denied)",
  EPERM: "Workspace path is not accessible (operation not permitted)",
  // mkdir of a parent that exists as a file.
  EEXIST: "Workspace path goes through a file as if it were a directory",
  EINVAL: "Workspace path is not valid on this file system",
};

/** Runs a file operation on `rel`, turning the file system's refusals into `WorkspacePathError`s that say why. */
async function guarded<T>(rel: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (err instanceof WorkspacePathError) throw err;
    const message = ERRNO_MESSAGES[errnoCode(err) ?? ""];
    if (message) throw new WorkspacePathError(`${message}: ${rel.slice(0, 200)}`, rel);
    throw err;
  }
}

async function guardedResolve(root: string, rel: string): Promise<string> {
  const normalized = normalizeWorkspacePath(rel);
  const target = normalized ? path.join(root, ...normalized.split("/")) : root;

  // Walk up to the nearest path that exists (lstat: a dangling symlink exists too) and resolve its real path.
  let existing = target;
  const missing: string[] = [];
  for (;;) {
    try {
      await fs.lstat(existing);
      break;
    } catch (err) {
      if (errnoCode(err) !== "ENOENT" && errnoCode(err) !== "ENOTDIR") throw err;
      if (existing === root) throw new WorkspacePathError("Workspace directory no longer exists", rel);
      missing.unshift(path.basename(existing));
      existing = path.dirname(existing);
    }
  }
  let real: string;
  try {
    real = await fs.realpath(existing);
  } catch (err) {
    const code = errnoCode(err);
    if (code === "ENOENT" || code === "ELOOP") {
      throw new WorkspacePathError(
        `Workspace path goes through a symlink whose target is missing or loops: ${rel}`,
        rel,
      );
    }
    throw err;
  }
  if (!isInside(root, real)) {
    throw new WorkspacePathError(`Workspace path leads outside the workspace through a symlink: ${rel}`, rel);
  }
  return missing.length ? path.join(real, ...missing) : real;
}

async function walkFiles(root: string, dir: string, out: WorkspaceFile[]): Promise<void> {
  let entries: import("node:fs").Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return;
    throw err;
  }
  for (const entry of entries) {
    const abs = path.join(dir, entry.name);
    if (entry.isDirectory()) await walkFiles(root, abs, out);
    else if (entry.isFile()) {
      const stat = await fs.lstat(abs);
      out.push({ path: path.relative(root, abs).split(path.sep).join("/"), size: stat.size });
    }
  }
}

/** Opens an existing directory as a workspace. */
export async function openWorkspace(dir: string): Promise<Workspace> {
  const root = await fs.realpath(dir);
  const resolve = (rel: string) => guarded(rel, () => guardedResolve(root, rel));
  const resolveFile = async (rel: string) => {
    const abs = await resolve(rel);
    if (abs === root) throw new WorkspacePathError("Workspace path names the workspace root, not a file", rel);
    return abs;
  };

  const workspace: Workspace = {
    root,
    resolve,
    read: (rel) =>
      guarded(rel, async () => {
        const abs = await resolveFile(rel);
        const handle = await fs.open(abs, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
        try {
          return await handle.readFile();
        } finally {
          await handle.close();
        }
      }),
    async readText(rel) {
      return (await workspace.read(rel)).toString("utf8");
    },
    write: (rel, content) =>
      guarded(rel, async () => {
        const abs = await resolveFile(rel);
        await fs.mkdir(path.dirname(abs), { recursive: true });
        // Re-check after mkdir: a directory created meanwhile could be a symlink out.
        const parentReal = await fs.realpath(path.dirname(abs));
        if (!isInside(root, parentReal)) {
          throw new WorkspacePathError(`Workspace path leads outside the workspace through a symlink: ${rel}`, rel);
        }
        const flags = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_NOFOLLOW;
        let handle: fs.FileHandle;
        try {
          handle = await fs.open(path.join(parentReal, path.basename(abs)), flags, 0o644);
        } catch (err) {
          if (errnoCode(err) === "ELOOP") {
            throw new WorkspacePathError(`Workspace path is a symlink; refusing to write through it: ${rel}`, rel);
          }
          throw err;
        }
        try {
          await handle.writeFile(content);
        } finally {
          await handle.close();
        }
      }),
    remove: (rel) =>
      guarded(rel, async () => {
        const abs = await resolveFile(rel);
        // fs.rm removes a symlink itself and never follows links inside a tree it deletes.
        await fs.rm(abs, { recursive: true, force: true });
      }),
    list: (rel = "") =>
      guarded(rel, async () => {
        const abs = await resolve(rel);
        const out: WorkspaceFile[] = [];
        const stat = await fs.lstat(abs).catch(() => undefined);
        if (stat?.isFile()) out.push({ path: path.relative(root, abs).split(path.sep).join("/"), size: stat.size });
        else if (stat?.isDirectory()) await walkFiles(root, abs, out);
        return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
      }),
  };
  return workspace;
}

/**
 * Creates the directory that holds every workspace (mode 0700) and checks that it is a real directory of this
 * process's user that no one else can write to: another local user must not be able to pre-create it, or plant a
 * symlink in its place, to read or redirect the workspaces.
 */
export async function prepareWorkspacesDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const stat = await fs.lstat(dir);
  if (stat.isSymbolicLink()) throw new Error(`${dir} is a symlink; point the variable at a real directory`);
  if (!stat.isDirectory()) throw new Error(`${dir} exists and is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid) {
    throw new Error(`${dir} belongs to uid ${stat.uid}, not to this worker's user (uid ${uid})`);
  }
  if (stat.mode & 0o022) await fs.chmod(dir, 0o700);
}

/** Creates (emptying any leftover from an earlier process) the workspace of one task attempt. */
export async function createWorkspace(workspacesDir: string, taskId: string, attempt: number): Promise<Workspace> {
  if (!/^[A-Za-z0-9-]{1,64}$/.test(taskId))
    throw new WorkspacePathError("Task id is not a valid directory name", taskId);
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new WorkspacePathError("Attempt must be a positive integer", String(attempt));
  }
  const dir = path.join(path.resolve(workspacesDir), taskId, String(attempt));
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  return openWorkspace(dir);
}
