import { Link } from "react-router-dom";
import type { ChatMessageDto } from "../../shared/chat.js";
import { formatDateTime } from "../lib/format.js";
import type { OutgoingMessage } from "./useOutbox.js";

const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });

/** A stored message: its author and time, the text as written, and a chip for each task it refers to. */
export function MessageItem({ message: m, mine }: { message: ChatMessageDto; mine: boolean }) {
  return (
    <li
      className="chat-message"
      data-role={m.role}
      data-mine={mine || undefined}
      data-status={m.status}
      data-message-id={m.id}
    >
      <div className="chat-meta">
        <strong className="chat-author">{m.authorName}</strong>
        <time dateTime={m.createdAt.toISOString()} title={formatDateTime(m.createdAt)} className="muted small">
          {timeOnly.format(m.createdAt)}
        </time>
        {m.status === "streaming" ? (
          <span className="tag" data-tone="info">
            writing…
          </span>
        ) : null}
        {m.status === "failed" ? <span className="tag tag-bad">answer failed</span> : null}
      </div>
      <div className="chat-text">
        {m.content || (m.status === "streaming" ? <span className="muted">…</span> : null)}
        {m.status === "streaming" ? <span className="chat-cursor" aria-hidden="true" /> : null}
      </div>
      {m.links.length ? (
        <ul className="task-chips" aria-label="Tasks">
          {m.links.map((l) => (
            <li key={l.taskId}>
              <Link className="task-chip" to={`/tasks/${l.taskId}`} title={`Task ${l.taskId}`}>
                {l.title}
              </Link>
            </li>
          ))}
        </ul>
      ) : null}
    </li>
  );
}

/** A message of ours the server has not confirmed: sending, or refused with the reason and a retry. */
export function OutgoingItem({
  entry,
  author,
  onRetry,
  onDiscard,
}: {
  entry: OutgoingMessage;
  author: string;
  onRetry: () => void;
  onDiscard: () => void;
}) {
  return (
    <li className="chat-message" data-role="operator" data-mine data-outgoing={entry.status}>
      <div className="chat-meta">
        <strong className="chat-author">{author}</strong>
        {entry.status === "pending" ? (
          <span className="tag">Sending…</span>
        ) : (
          <span className="tag tag-bad">Not sent</span>
        )}
      </div>
      <div className="chat-text">{entry.content}</div>
      {entry.status === "failed" ? (
        <div className="chat-failed" role="alert">
          <span>{entry.error}</span>
          <button type="button" className="btn btn-small" onClick={onRetry}>
            Retry
          </button>
          <button type="button" className="btn btn-small" onClick={onDiscard}>
            Discard
          </button>
        </div>
      ) : null}
    </li>
  );
}
