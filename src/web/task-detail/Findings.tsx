import type { Finding } from "../../shared/worker-protocol.js";

/** Findings as path:line, pattern and snippet, so an operator can go straight to the line. */
export function FindingList({ findings }: { findings: Finding[] }) {
  if (!findings.length) return <p className="muted">No findings.</p>;
  return (
    <ul className="finding-list">
      {findings.map((f, i) => (
        // Findings repeat (the same pattern twice on a line); their order is their identity.
        // biome-ignore lint/suspicious/noArrayIndexKey: see above
        <li key={i} className="finding" data-severity={f.severity}>
          <span className="severity">{f.severity}</span>
          {f.path ? (
            <code className="finding-location">
              {f.path}
              {f.line ? `:${f.line}` : ""}
            </code>
          ) : null}
          {f.pattern ? (
            <span className="finding-pattern">
              pattern <code>{f.pattern}</code>
            </span>
          ) : null}
          <span className="finding-message">{f.message}</span>
          {f.snippet ? <pre className="snippet">{f.snippet}</pre> : null}
        </li>
      ))}
    </ul>
  );
}
