import { type KeyboardEvent, useId, useRef, useState } from "react";
import { CHAT_LIMITS } from "../../shared/chat.js";

/** Tell the others at most this often that we are typing (the server passes on two a second at most). */
const TYPING_EVERY_MS = 2_000;

/** Enter sends, Shift+Enter starts a new line; the count shows how much of the limit is used. */
export function Composer({ onSend, onTyping }: { onSend: (content: string) => void; onTyping: () => void }) {
  const [text, setText] = useState("");
  const lastTyping = useRef(0);
  const id = useId();
  const length = text.trim().length;
  const over = length > CHAT_LIMITS.message;
  const canSend = length > 0 && !over;

  const send = () => {
    if (!canSend) return;
    onSend(text.trim());
    setText("");
    lastTyping.current = 0;
  };

  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    // An IME composing a character uses Enter to confirm it, not to send.
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      send();
    }
  };

  return (
    <form
      className="composer"
      onSubmit={(e) => {
        e.preventDefault();
        send();
      }}
    >
      <label htmlFor={`${id}-text`} className="visually-hidden">
        Message
      </label>
      <textarea
        id={`${id}-text`}
        value={text}
        rows={3}
        placeholder="Write a message or a command (/help lists them). Enter sends, Shift+Enter starts a new line."
        aria-describedby={`${id}-count`}
        aria-invalid={over || undefined}
        onKeyDown={onKeyDown}
        onChange={(e) => {
          setText(e.target.value);
          const now = Date.now();
          if (e.target.value.trim() && now - lastTyping.current >= TYPING_EVERY_MS) {
            lastTyping.current = now;
            onTyping();
          }
        }}
      />
      <div className="composer-bar">
        <span id={`${id}-count`} className={over ? "field-error" : "muted small"}>
          {over
            ? `${length} of ${CHAT_LIMITS.message} characters: shorten it by ${length - CHAT_LIMITS.message} to send`
            : `${length} / ${CHAT_LIMITS.message}`}
        </span>
        <button type="submit" className="btn btn-primary" disabled={!canSend}>
          Send
        </button>
      </div>
    </form>
  );
}
