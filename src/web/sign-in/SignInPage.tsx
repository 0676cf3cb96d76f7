import { type FormEvent, useState } from "react";
import { useSearchParams } from "react-router-dom";
import { errorText } from "../components/ErrorMessage.js";
import { trpc } from "../trpc.js";

/** Only same-site paths, so a crafted link cannot send the operator elsewhere after signing in. */
function safeNext(next: string | null): string {
  return next?.startsWith("/") && !next.startsWith("//") ? next : "/tasks";
}

export default function SignInPage() {
  const [params] = useSearchParams();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const signIn = trpc.auth.signIn.useMutation({
    // A full load opens the live WebSocket again, now carrying the session cookie. A password someone
    // else set (an admin, or the first start's one-time password) is replaced before anything else.
    onSuccess: ({ user }) => {
      const next = safeNext(params.get("next"));
      window.location.assign(user.mustChangePassword ? `/account/password?next=${encodeURIComponent(next)}` : next);
    },
  });

  const submit = (e: FormEvent) => {
    e.preventDefault();
    signIn.reset();
    signIn.mutate({ username, password });
  };

  return (
    <main id="main" className="sign-in">
      <form className="sign-in-card" onSubmit={submit} noValidate aria-labelledby="sign-in-title">
        <p className="brand">Agent Agency</p>
        <h1 id="sign-in-title">Sign in</h1>
        <div className="field">
          <label htmlFor="sign-in-username">Username</label>
          <input
            id="sign-in-username"
            autoComplete="username"
            value={username}
            maxLength={64}
            onChange={(e) => setUsername(e.target.value)}
          />
        </div>
        <div className="field">
          <label htmlFor="sign-in-password">Password</label>
          <input
            id="sign-in-password"
            type="password"
            autoComplete="current-password"
            value={password}
            maxLength={256}
            onChange={(e) => setPassword(e.target.value)}
          />
        </div>
        <p className="field-error" role={signIn.error ? "alert" : undefined}>
          {signIn.error ? errorText(signIn.error) : ""}
        </p>
        <button type="submit" className="btn btn-primary" disabled={signIn.isPending}>
          {signIn.isPending ? "Signing in…" : "Sign in"}
        </button>
        <p className="hint">
          On first start the server creates the user <code>admin</code>; its password is AGENCY_ADMIN_PASSWORD, or the
          one-time password printed in the server log.
        </p>
      </form>
    </main>
  );
}
