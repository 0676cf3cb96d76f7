import { useState } from "react";
import { LOG_EVENT_TYPES, type TaskEventDto } from "../../shared/task-events.js";
import type { Finding } from "../../shared/worker-protocol.js";
import { ErrorMessage } from "../components/ErrorMessage.js";
import { Time } from "../components/Time.js";
import { type RouterOutputs, trpc } from "../trpc.js";
import { DiffView } from "./Artifacts.js";
import { FindingList } from "./Findings.js";
import { LogLines, toLine } from "./Logs.js";
import { VerdictBadge } from "./VerdictBadge.js";
import "./task-history.css";

type TaskDetail = RouterOutputs["tasks"]["get"];
type Attempt = TaskDetail["attempts"][number];
type Origin = NonNullable<Attempt["origin"]>;

/** Why an attempt ran, in the words the timeline uses too. */
export function originText(origin: Origin | null): string {
  if (!origin) return "Origin not recorded";
  switch (origin.kind) {
    case "submitted":
      return `Submitted by ${origin.by}`;
    case "retry":
      return origin.autoLeft !== null && origin.autoMax !== null
        ? `Retried by ${origin.by}; automatic re-dispatches left: ${origin.autoLeft} of ${origin.autoMax}`
        : `Retried by ${origin.by}`;
    case "automatic":
      return `Automatic re-dispatch after changes requested (${origin.redispatch} of ${origin.of})`;
    case "requeue":
      return "Queued again by the agency after the previous attempt ended without a result";
  }
}

/** The line under an attempt's heading: who or what started it, and when. */
export function AttemptOrigin({ attempt }: { attempt: Attempt }) {
  const o = attempt.origin;
  return (
    <p className="attempt-origin muted" data-testid="attempt-origin" data-origin={o?.kind ?? "unknown"}>
      {originText(o)}
      {o ? (
        <>
          {" "}
          at <Time value={o.at} />
        </>
      ) : null}
    </p>
  );
}

/** Lines read per page for one attempt's output. */
const ATTEMPT_LOG_PAGE = 200;

/** One attempt's own output, read by page when its section is opened (never live: the Logs tab is). */
function AttemptLog({ taskId, number }: { taskId: string; number: number }) {
  const input = { taskId, kinds: [...LOG_EVENT_TYPES], attempt: number, limit: ATTEMPT_LOG_PAGE };
  const first = trpc.tasks.events.useQuery(input, { refetchOnWindowFocus: false });
  const utils = trpc.useUtils();
  const [older, setOlder] = useState<TaskEventDto[]>([]);
  const [done, setDone] = useState(false);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<{ message: string } | null>(null);
  if (first.error) return <ErrorMessage title="Could not load this attempt's output:" error={first.error} />;
  if (first.isPending) return <p className="loading">Loading output…</p>;
  const events = [...older, ...first.data.items];
  const hasOlder = !done && (older.length ? true : first.data.hasMore);
  const loadOlder = async () => {
    const oldest = events[0]?.seq;
    if (!oldest) return;
    setLoading(true);
    setError(null);
    try {
      const page = await utils.tasks.events.fetch({ ...input, before: oldest });
      setOlder((prev) => [...page.items, ...prev]);
      if (!page.hasMore) setDone(true);
    } catch (err) {
      setError(err as { message: string });
    } finally {
      setLoading(false);
    }
  };
  return (
    <>
      <div className="logs-bar">
        <span className="muted">
          {events.length}
          {hasOlder ? "+" : ""} {events.length === 1 ? "line" : "lines"}
        </span>
        {hasOlder ? (
          <button type="button" className="btn btn-small" disabled={loading} onClick={() => void loadOlder()}>
            {loading ? "Loading…" : "Load earlier lines"}
          </button>
        ) : null}
        <a className="btn btn-small" href={`/download/tasks/${taskId}/log.txt?attempt=${number}`} download>
          Download attempt {number}'s log
        </a>
      </div>
      {error ? <ErrorMessage title="Could not load earlier lines:" error={error} /> : null}
      {events.length ? (
        <div
          className="log-box log-box-short"
          role="log"
          aria-label={`Output of attempt ${number}`}
          // biome-ignore lint/a11y/noNoninteractiveTabindex: the scrolling region must be reachable by keyboard.
          tabIndex={0}
        >
          <LogLines lines={events.map(toLine)} lineHref={(seq) => `?tab=logs&line=${seq}`} />
        </div>
      ) : (
        <p className="muted">This attempt wrote no output.</p>
      )}
    </>
  );
}

/**
 * Everything one attempt left: its verdict and findings, its files, its own output. Folded; the output is
 * read only once it is opened, so a task with many attempts loads none of their lines up front.
 */
export function AttemptMore({ taskId, attempt: a }: { taskId: string; attempt: Attempt }) {
  const [open, setOpen] = useState(false);
  const findings: Finding[] = a.judgement?.judges.flatMap((j) => j.findings) ?? [];
  return (
    <details
      className="attempt-more"
      data-testid={`attempt-more-${a.number}`}
      onToggle={(e) => setOpen(e.currentTarget.open)}
    >
      <summary>
        Verdict, files and output of attempt {a.number}
        <span className="visually-hidden"> ({a.artifacts.length} files)</span>
      </summary>
      {open ? (
        <>
          <section aria-label={`Verdict on attempt ${a.number}`}>
            <h4 className="section-title">Verdict</h4>
            {a.judgement ? (
              <>
                <p>
                  <VerdictBadge verdict={a.judgement.verdict} />
                  {a.judgement.override ? <span className="muted"> (overridden by an admin)</span> : null}
                </p>
                <p className="description">{a.judgement.rationale}</p>
                <FindingList findings={findings} />
              </>
            ) : (
              <p className="muted">Not judged{a.error ? ": the attempt ended with an error" : ""}.</p>
            )}
          </section>
          <section aria-label={`Files of attempt ${a.number}`}>
            <h4 className="section-title">Files ({a.artifacts.length})</h4>
            {a.artifacts.length ? (
              <ul className="artifact-list">
                {a.artifacts.map((x) => (
                  <li key={x.id} className="artifact" data-path={x.path}>
                    <div className="artifact-head">
                      <code className="artifact-path">{x.path}</code>
                      <span className="tag" data-operation={x.operation}>
                        {x.operation}
                      </span>
                      <span className="line-counts">
                        <span className="added">+{x.linesAdded}</span>{" "}
                        <span className="removed">−{x.linesRemoved}</span>
                      </span>
                    </div>
                    {x.diff ? (
                      <DiffView diff={x.diff} />
                    ) : x.content !== null ? (
                      <pre className="file-content">{x.content}</pre>
                    ) : (
                      <p className="muted">The worker sent neither a diff nor the content.</p>
                    )}
                  </li>
                ))}
              </ul>
            ) : (
              <p className="muted">No files.</p>
            )}
          </section>
          <section aria-label={`Output of attempt ${a.number}`}>
            <h4 className="section-title">Output</h4>
            <AttemptLog taskId={taskId} number={a.number} />
          </section>
        </>
      ) : null}
    </details>
  );
}
