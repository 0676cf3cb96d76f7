import { useState } from "react";
import type { RouterOutputs } from "../trpc.js";

type TaskDetail = RouterOutputs["tasks"]["get"];
type Artifact = TaskDetail["attempts"][number]["artifacts"][number];

const OPERATION_LABELS: Record<Artifact["operation"], string> = {
  create: "created",
  modify: "modified",
  delete: "deleted",
};

function lineKind(line: string): "add" | "del" | "hunk" | "meta" | "ctx" {
  if (line.startsWith("+++") || line.startsWith("---")) return "meta";
  if (line.startsWith("@@")) return "hunk";
  if (line.startsWith("+")) return "add";
  if (line.startsWith("-")) return "del";
  if (line.startsWith("Index:") || line.startsWith("====") || line.startsWith("\\")) return "meta";
  return "ctx";
}

/** A unified diff, each added and removed line marked in colour and, for screen readers, in words. */
export function DiffView({ diff }: { diff: string }) {
  const lines = diff.replace(/\n$/, "").split("\n");
  return (
    <pre className="diff">
      {lines.map((line, i) => {
        const kind = lineKind(line);
        return (
          // Lines of a diff are identified by their position.
          // biome-ignore lint/suspicious/noArrayIndexKey: see above
          <span key={i} className={`diff-line diff-${kind}`}>
            {kind === "add" ? <span className="visually-hidden">added: </span> : null}
            {kind === "del" ? <span className="visually-hidden">removed: </span> : null}
            {line}
            {"\n"}
          </span>
        );
      })}
    </pre>
  );
}

function ArtifactItem({ artifact: a }: { artifact: Artifact }) {
  const [view, setView] = useState<"diff" | "content">(a.diff ? "diff" : "content");
  const hasContent = a.content !== null && a.operation !== "delete";
  return (
    <li className="artifact" data-path={a.path}>
      <div className="artifact-head">
        <code className="artifact-path">{a.path}</code>
        <span className="tag" data-operation={a.operation}>
          {OPERATION_LABELS[a.operation]}
        </span>
        <span className="line-counts">
          <span className="added">+{a.linesAdded}</span> <span className="removed">−{a.linesRemoved}</span>
        </span>
        {a.diff && hasContent ? (
          <span className="view-switch">
            <button
              type="button"
              className="btn btn-small"
              aria-pressed={view === "diff"}
              onClick={() => setView("diff")}
            >
              Diff
            </button>
            <button
              type="button"
              className="btn btn-small"
              aria-pressed={view === "content"}
              onClick={() => setView("content")}
            >
              Content
            </button>
          </span>
        ) : null}
      </div>
      {view === "diff" && a.diff ? <DiffView diff={a.diff} /> : null}
      {view === "content" && hasContent ? <pre className="file-content">{a.content}</pre> : null}
      {!a.diff && !hasContent ? <p className="muted">The worker sent neither a diff nor the content.</p> : null}
    </li>
  );
}

/** The files an attempt produced; by default the judged attempt's, with the others a choice away. */
export function Artifacts({ task }: { task: TaskDetail }) {
  const withFiles = task.attempts.filter((a) => a.artifacts.length > 0);
  const defaultAttempt = task.verdict?.attempt ?? withFiles.at(-1)?.number ?? null;
  const [chosen, setChosen] = useState<number | null>(null);
  const number = chosen ?? defaultAttempt;
  const attempt = task.attempts.find((a) => a.number === number);

  if (!withFiles.length) return <p className="muted">No artifacts: no attempt has returned files yet.</p>;
  return (
    <div>
      {withFiles.length > 1 ? (
        <div className="field field-inline">
          <label htmlFor="artifact-attempt">Attempt</label>
          <select id="artifact-attempt" value={number ?? ""} onChange={(e) => setChosen(Number(e.target.value))}>
            {withFiles.map((a) => (
              <option key={a.number} value={a.number}>
                Attempt {a.number} ({a.artifacts.length} {a.artifacts.length === 1 ? "file" : "files"})
              </option>
            ))}
          </select>
        </div>
      ) : (
        <p className="muted">From attempt {number}.</p>
      )}
      <ul className="artifact-list" aria-label="Artifacts">
        {attempt?.artifacts.map((a) => (
          <ArtifactItem key={a.id} artifact={a} />
        ))}
      </ul>
    </div>
  );
}
