import { useState } from "react";
import { CHAT_LIMITS, type ChatSessionDto } from "../../shared/chat.js";
import { Dialog } from "../components/Dialog.js";
import { errorText, refusalText } from "../components/ErrorMessage.js";
import { trpc } from "../trpc.js";

/** The session's title and live state; operators rename or end it here. */
export function SessionHeader({
  session,
  canEdit,
  state,
}: {
  session: ChatSessionDto;
  canEdit: boolean;
  state: { tone: string; text: string };
}) {
  const utils = trpc.useUtils();
  const refresh = async () => {
    await Promise.all([
      utils.chat.sessions.list.invalidate(),
      utils.chat.sessions.get.invalidate({ sessionId: session.id }),
    ]);
  };
  const rename = trpc.chat.sessions.rename.useMutation({ onSuccess: refresh });
  const [editing, setEditing] = useState(false);
  const [title, setTitle] = useState(session.title);
  const [confirmEnd, setConfirmEnd] = useState(false);
  const editable = canEdit && !session.endedAt;

  return (
    <div className="chat-head">
      {editing ? (
        <form
          className="chat-rename"
          onSubmit={(e) => {
            e.preventDefault();
            rename.mutate({ sessionId: session.id, title }, { onSuccess: () => setEditing(false) });
          }}
        >
          <label>
            <span className="visually-hidden">Session title</span>
            <input
              value={title}
              maxLength={CHAT_LIMITS.title}
              onChange={(e) => setTitle(e.target.value)}
              // biome-ignore lint/a11y/noAutofocus: the field opened because the user asked to rename.
              autoFocus
            />
          </label>
          <button type="submit" className="btn btn-small btn-primary" disabled={rename.isPending}>
            Save
          </button>
          <button
            type="button"
            className="btn btn-small"
            onClick={() => {
              setEditing(false);
              setTitle(session.title);
              rename.reset();
            }}
          >
            Cancel
          </button>
          {rename.error ? (
            <span className="inline-error" role="alert">
              {errorText(rename.error)}
            </span>
          ) : null}
        </form>
      ) : (
        <h2 className="chat-title">
          {session.title}
          {session.endedAt ? <span className="tag tag-bad">Ended</span> : null}
        </h2>
      )}
      <span className="live-state" data-tone={state.tone} data-chat-live={state.tone === "ok" ? "live" : "down"}>
        <span className="live-dot" aria-hidden="true" />
        <span role="status">{state.text}</span>
      </span>
      {editable && !editing ? (
        <div className="chat-head-actions">
          <button
            type="button"
            className="btn btn-small"
            onClick={() => {
              setTitle(session.title);
              setEditing(true);
            }}
          >
            Rename
          </button>
          <button type="button" className="btn btn-small btn-danger" onClick={() => setConfirmEnd(true)}>
            End session
          </button>
        </div>
      ) : null}
      {confirmEnd ? <EndDialog session={session} onClose={() => setConfirmEnd(false)} onEnded={refresh} /> : null}
    </div>
  );
}

function EndDialog({
  session,
  onClose,
  onEnded,
}: {
  session: ChatSessionDto;
  onClose: () => void;
  onEnded: () => Promise<void>;
}) {
  const end = trpc.chat.sessions.end.useMutation();
  return (
    <Dialog title={`End "${session.title}"?`} onClose={onClose}>
      {(close) => (
        <>
          <p>Everyone in the session can still read it, but nobody can write to it any more.</p>
          <p className="field-error" role={end.error ? "alert" : undefined}>
            {end.error ? refusalText(end.error) : ""}
          </p>
          <div className="dialog-buttons">
            <button type="button" className="btn" onClick={close}>
              Keep it open
            </button>
            <button
              type="button"
              className="btn btn-danger"
              disabled={end.isPending}
              onClick={() =>
                end.mutate(
                  { sessionId: session.id },
                  {
                    onSuccess: async () => {
                      await onEnded();
                      close();
                    },
                  },
                )
              }
            >
              End session
            </button>
          </div>
        </>
      )}
    </Dialog>
  );
}
