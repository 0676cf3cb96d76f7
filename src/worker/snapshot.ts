import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import fs from "node:fs/promises";
import { createTwoFilesPatch, FILE_HEADERS_ONLY } from "diff";
import type { Artifact } from "../shared/worker-protocol.js";
import type { Workspace } from "./workspace.js";

/** The protocol's cap on an artifact's `content` and `diff`. */
export const MAX_ARTIFACT_CHARS = 2 * 1024 * 1024;
/** The protocol's cap on the number of artifacts in one result. */
export const MAX_ARTIFACTS = 10_000;

export interface FileState {
  hash: string;
  size: number;
  /** UTF-8 text of a file small enough to diff; undefined for binary or large files. */
  text?: string;
}

export type Snapshot = Map<string, FileState>;

export interface SnapshotLimits {
  /** Total characters of text kept across the snapshot; files beyond it are compared by hash only. */
  maxTextChars: number;
  /**
   * The snapshot this one will be compared with: text is kept only for files that differ from it, so the budget goes
   * to the changed files rather than to whatever unchanged files come first.
   */
  baseline?: Snapshot;
  /** Leaves out the directories with these names at the workspace's top level (a checkout's `.git`). */
  excludeTopLevel?: readonly string[];
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function asText(buf: Buffer): string | undefined {
  if (buf.includes(0)) return undefined;
  try {
    return utf8.decode(buf);
  } catch {
    return undefined;
  }
}

async function hashFile(abs: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(abs)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Regular files only: symlinks are never followed, so a link to a file outside cannot leak its contents. */
export async function snapshotWorkspace(workspace: Workspace, limits: SnapshotLimits): Promise<Snapshot> {
  const snapshot: Snapshot = new Map();
  let textBudget = limits.maxTextChars;
  const excluded = (p: string) => limits.excludeTopLevel?.some((dir) => p.startsWith(`${dir}/`)) ?? false;
  for (const file of await workspace.list()) {
    if (excluded(file.path)) continue;
    let abs: string;
    try {
      abs = await workspace.resolve(file.path);
    } catch {
      continue;
    }
    const stat = await fs.lstat(abs).catch(() => undefined);
    if (!stat?.isFile()) continue;
    if (stat.size <= MAX_ARTIFACT_CHARS && stat.size <= textBudget) {
      const buf = await fs.readFile(abs).catch(() => undefined);
      if (!buf) continue;
      const hash = createHash("sha256").update(buf).digest("hex");
      const unchanged = limits.baseline?.get(file.path)?.hash === hash;
      const text = unchanged ? undefined : asText(buf);
      if (text !== undefined) textBudget -= text.length;
      snapshot.set(file.path, { hash, size: buf.length, ...(text !== undefined ? { text } : {}) });
    } else {
      const hash = await hashFile(abs).catch(() => undefined);
      if (hash) snapshot.set(file.path, { hash, size: stat.size });
    }
  }
  return snapshot;
}

export interface ArtifactDiff {
  artifacts: Artifact[];
  /** Changes beyond the protocol's artifact limit, left out. */
  omitted: number;
}

/**
 * Created, modified and deleted files between two snapshots, sorted by path. Text files carry their new `content`
 * and a unified `diff` (`/dev/null` on the missing side); binary or oversized files carry neither. `maxResultChars`
 * bounds the content and diffs of all artifacts together, so one result stays a sendable size.
 */
export function diffSnapshots(before: Snapshot, after: Snapshot, maxResultChars: number): ArtifactDiff {
  const paths = [...new Set([...before.keys(), ...after.keys()])].sort();
  const artifacts: Artifact[] = [];
  let omitted = 0;
  let budget = maxResultChars;
  for (const p of paths) {
    const old = before.get(p);
    const now = after.get(p);
    if (old && now && old.hash === now.hash) continue;
    if (artifacts.length >= MAX_ARTIFACTS) {
      omitted++;
      continue;
    }
    const operation: Artifact["operation"] = !old ? "create" : !now ? "delete" : "modify";
    const artifact: Artifact = { path: p, operation };
    const oldText = old ? old.text : "";
    const newText = now ? now.text : "";
    if (oldText !== undefined && newText !== undefined) {
      const diff = createTwoFilesPatch(
        old ? `a/${p}` : "/dev/null",
        now ? `b/${p}` : "/dev/null",
        oldText,
        newText,
        undefined,
        undefined,
        { headerOptions: FILE_HEADERS_ONLY },
      );
      const contentChars = now ? newText.length : 0;
      if (diff.length <= MAX_ARTIFACT_CHARS && diff.length + contentChars <= budget) {
        if (now) artifact.content = newText;
        artifact.diff = diff;
        budget -= diff.length + contentChars;
      }
    }
    artifacts.push(artifact);
  }
  return { artifacts, omitted };
}
