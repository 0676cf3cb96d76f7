import { useState } from "react";
import { NavLink, useNavigate, useParams } from "react-router-dom";
import { CHAT_LIMITS } from "../../shared/chat.js";
import { ErrorMessage, errorText } from "../components/ErrorMessage.js";
import { useHasRole } from "../components/useMe.js";
import { formatShortDateTime } from "../lib/format.js";
import { trpc } from "../trpc.js";
import { SessionView } from "./SessionView.js";

/** Nothing pushes changes to the list of sessions: it is asked for again this often. */
const LIST_REFRESH_MS = 10_000;

export default function ChatPage() {
  const { sessionId } = useParams();
  return (
    <div className="page chat-page">
      <h1 className="visually-hidden">Chat</h1>
      <SessionList current={sessionId ?? null} />
      {sessionId ? (
        <CurrentSession key={sessionId} sessionId={sessionId} />
      ) : (
        <div className="chat-session empty-state">
          <p>Pick a session on the left, or start a new one.</p>
          <p className="muted">
            Everyone in a session sees its messages and who is typing as it happens. The agency answers commands such as
            /status, /tasks, /task &lt;title&gt; and /help.
          </p>
        </div>
      )}
    </div>
  );
}

function CurrentSession({ sessionId }: { sessionId: string }) {
  const session = trpc.chat.sessions.get.useQuery(
    { sessionId },
    { retry: (count, err) => err.data?.code !== "NOT_FOUND" && err.data?.code !== "BAD_REQUEST" && count < 2 },
  );
  if (session.error) return <ErrorMessage title="Could not open this session:" error={session.error} />;
  if (!session.data) return <p className="loading">Loading the session…</p>;
  return <SessionView session={session.data} />;
}

function SessionList({ current }: { current: string | null }) {
  const canCreate = useHasRole("operator");
  const [includeEnded, setIncludeEnded] = useState(false);
  const list = trpc.chat.sessions.list.useQuery({ includeEnded }, { refetchInterval: LIST_REFRESH_MS });
  const utils = trpc.useUtils();
  const navigate = useNavigate();
  const create = trpc.chat.sessions.create.useMutation({
    onSuccess: async (s) => {
      setTitle("");
      await utils.chat.sessions.list.invalidate();
      navigate(`/chat/${s.id}`);
    },
  });
  const [title, setTitle] = useState("");

  return (
    <aside className="chat-sidebar" aria-label="Chat sessions">
      <h2 className="section-title">Sessions</h2>
      {canCreate ? (
        <form
          className="chat-new"
          onSubmit={(e) => {
            e.preventDefault();
            create.mutate(title.trim() ? { title: title.trim() } : {});
          }}
        >
          <label className="chat-new-field">
            <span className="visually-hidden">Title of the new session (optional)</span>
            <input
              value={title}
              maxLength={CHAT_LIMITS.title}
              placeholder="Title (optional)"
              onChange={(e) => setTitle(e.target.value)}
            />
          </label>
          <button type="submit" className="btn btn-primary btn-small" disabled={create.isPending}>
            New session
          </button>
          {create.error ? (
            <span className="inline-error" role="alert">
              {errorText(create.error)}
            </span>
          ) : null}
        </form>
      ) : null}
      <label className="check small">
        <input type="checkbox" checked={includeEnded} onChange={(e) => setIncludeEnded(e.target.checked)} /> Show ended
        sessions
      </label>
      {list.error ? <ErrorMessage title="Could not load the sessions:" error={list.error} /> : null}
      {list.isPending ? <p className="loading">Loading…</p> : null}
      {list.data?.length === 0 ? <p className="muted small">No sessions yet.</p> : null}
      <ul className="chat-session-list">
        {list.data?.map((s) => (
          <li key={s.id}>
            <NavLink
              to={`/chat/${s.id}`}
              className="chat-session-link"
              aria-current={s.id === current ? "page" : undefined}
            >
              <span className="chat-session-title">{s.title}</span>
              <span className="muted small">
                {s.endedAt ? "ended " : ""}
                {formatShortDateTime(s.endedAt ?? s.updatedAt)}
              </span>
            </NavLink>
          </li>
        ))}
      </ul>
    </aside>
  );
}
