import { type FormEvent, useState } from "react";
import { useNavigate, useSearchParams } from "react-router-dom";
import { passwordSchema } from "../../shared/auth.js";
import { refusalText } from "../components/ErrorMessage.js";
import { useMe } from "../components/useMe.js";
import { trpc } from "../trpc.js";

const safeNext = (next: string | null) => (next?.startsWith("/") && !next.startsWith("//") ? next : "/tasks");

/** Change one's own password; the shell sends a user here first while their password must be changed. */
export default function PasswordPage() {
  const me = useMe();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const utils = trpc.useUtils();
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [repeat, setRepeat] = useState("");
  const [error, setError] = useState<string | null>(null);
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
    if (!current) return setError("Enter your current password.");
    const parsed = passwordSchema.safeParse(next);
    if (!parsed.success) return setError(parsed.error.issues[0]?.message ?? "The new password is not valid.");
    if (next !== repeat) return setError("The two new passwords differ.");
    if (next === current) return setError("The new password must differ from the current one.");
    setError(null);
    change.mutate({ currentPassword: current, newPassword: next });
  };

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
          />
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
          />
          <p className="hint">At least 12 characters.</p>
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
          />
        </div>
        <p className="field-error" role={error || change.error ? "alert" : undefined}>
          {error ?? (change.error ? refusalText(change.error) : "")}
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
