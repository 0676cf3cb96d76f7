import { useState } from "react";
import type { RouterOutputs } from "../trpc.js";
import "./task-history.css";

type TaskDetail = RouterOutputs["tasks"]["get"];

/** The task as `tasks.get` answers it (dates as ISO strings), to read or copy whole. */
export function RawJson({ task }: { task: TaskDetail }) {
  const text = JSON.stringify(task, null, 2);
  const [copied, setCopied] = useState<"copied" | "failed" | null>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setCopied("copied");
    } catch {
      setCopied("failed");
    }
  };
  return (
    <div>
      <div className="raw-json-bar">
        <button type="button" className="btn btn-small" onClick={() => void copy()}>
          Copy JSON
        </button>
        <span className="muted" role="status" data-testid="json-copy-status">
          {copied === "copied"
            ? "Copied to the clipboard."
            : copied === "failed"
              ? "The browser refused the clipboard: select the text below and copy it."
              : `tasks.get, ${new Blob([text]).size.toLocaleString()} bytes`}
        </span>
      </div>
      <section
        className="raw-json"
        aria-label="The task as JSON"
        // biome-ignore lint/a11y/noNoninteractiveTabindex: the scrolling region must be reachable by keyboard.
        tabIndex={0}
      >
        <pre data-testid="raw-json">{text}</pre>
      </section>
    </div>
  );
}
