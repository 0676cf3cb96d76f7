import { type FormEvent, useState } from "react";
import { useNavigate, useSearchParams } from "react-router-dom";
import { passwordSchema } from "../../shared/auth.js";
import { refusalText } from "../components/ErrorMessage.js";
import { useMe } from "../components/useMe.js";
import { trpc } from "../trpc.js";

const safeNext = (next: string | null) => (next?.startsWith("/") && !next.startsWith("//") ? next : "/tasks");

type Field = "current" | "next" | "repeat";
type FieldErrors = Partial<Record<Field, string[]>>;

/** Every problem with the form at once, each under the field it is about. */
function check(current: string, next: string, repeat: string): FieldErrors {
  const errors: FieldErrors = {};
  const add = (field: Field, message: string) => {
    errors[field] = [...(errors[field] ?? []), message];
  };
  if (!current) add("current", "Enter your current password.");
  const parsed = passwordSchema.safeParse(next);
  if (!parsed.success) for (const issue of parsed.error.issues) add("next", issue.message);
  if (current && next && next === current) add("next", "The new password must differ from the current one.");
  if (!repeat) add("repeat", "Enter the new password again.");
  else if (next !== repeat) add("repeat", "The two new passwords differ.");
  return errors;
}

function FieldError({ id, messages }: { id: string; messages?: string[] }) {
  if (!messages?.length) return null;
  return (
    <ul className="field-error field-error-list" id={id}>
      {messages.map((m) => (
        <li key={m}>{m}</li>
      ))}
    </ul>
  );
}

/** Change one's own password; the shell sends a user here first while their password must be changed. */
export default function PasswordPage() {
  const me = useMe();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const utils = trpc.useUtils();
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [repeat, setRepeat] = useState("");
  const [errors, setErrors] = useState<FieldErrors>({});
  const [done, setDone] = useState<{ endedSessions: number } | null>(null);
  const change = trpc.auth.changePassword.useMutation({
    onSuccess: async (r) => {
      setCurrent("");
      setNext("");
      setRepeat("");
      setDone({ endedSessions: r.endedSessions });
      const forced = me?.mustChangePassword;
      await utils.auth.me.invalidate();
      if (forced) navigate(safeNext(params.get("next")), { replace: true });
    },
  });

  const submit = (e: FormEvent) => {
    e.preventDefault();
    setDone(null);
    change.reset();
    const found = check(current, next, repeat);
    setErrors(found);
    if (Object.keys(found).length > 0) return;
    change.mutate({ currentPassword: current, newPassword: next });
  };

  // The server's refusal of the current password belongs under that field; anything else under the form.
  const wrongCurrent = change.error?.data?.code === "FORBIDDEN" ? refusalText(change.error) : null;
  const currentErrors = errors.current ?? (wrongCurrent ? [wrongCurrent] : undefined);
  const formError = change.error && !wrongCurrent ? refusalText(change.error) : "";
  const invalid = (field: Field, messages?: string[]) =>
    messages?.length ? { "aria-invalid": true, "aria-describedby": `pw-${field}-error` } : {};
  const hasErrors = Boolean(currentErrors || errors.next || errors.repeat);

  return (
    <div className="page page-narrow">
      <h1>Change password</h1>
      {me?.mustChangePassword ? (
        <div className="notice notice-warn" role="status">
          <strong>Your password was set for you; choose your own before you go on.</strong> Until then the console shows
          nothing else.
        </div>
      ) : null}
      <form className="form-section admin-form narrow-form" onSubmit={submit} noValidate aria-label="Change password">
        <input type="text" hidden readOnly autoComplete="username" value={me?.username ?? ""} />
        <div className="field">
          <label htmlFor="pw-current">Current password</label>
          <input
            id="pw-current"
            type="password"
            autoComplete="current-password"
            value={current}
            maxLength={256}
            onChange={(e) => setCurrent(e.target.value)}
            {...invalid("current", currentErrors)}
          />
          <FieldError id="pw-current-error" messages={currentErrors} />
        </div>
        <div className="field">
          <label htmlFor="pw-new">New password</label>
          <input
            id="pw-new"
            type="password"
            autoComplete="new-password"
            value={next}
            maxLength={256}
            onChange={(e) => setNext(e.target.value)}
            {...invalid("next", errors.next)}
          />
          <p className="hint">At least 12 characters.</p>
          <FieldError id="pw-next-error" messages={errors.next} />
        </div>
        <div className="field">
          <label htmlFor="pw-repeat">New password again</label>
          <input
            id="pw-repeat"
            type="password"
            autoComplete="new-password"
            value={repeat}
            maxLength={256}
            onChange={(e) => setRepeat(e.target.value)}
            {...invalid("repeat", errors.repeat)}
          />
          <FieldError id="pw-repeat-error" messages={errors.repeat} />
        </div>
        <p className="field-error" role={formError || hasErrors ? "alert" : undefined}>
          {formError || (hasErrors ? "Correct the fields marked above." : "")}
        </p>
        {done ? (
          <p className="ok-text" role="status">
            Password changed.
            {done.endedSessions > 0
              ? ` Signed out ${done.endedSessions === 1 ? "1 other session" : `${done.endedSessions} other sessions`}.`
              : ""}
          </p>
        ) : null}
        <div className="form-buttons">
          <button type="submit" className="btn btn-primary" disabled={change.isPending}>
            {change.isPending ? "Changing…" : "Change password"}
          </button>
        </div>
      </form>
    </div>
  );
}
