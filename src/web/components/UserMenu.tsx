import { Link } from "react-router-dom";
import { trpc } from "../trpc.js";
import { errorText } from "./ErrorMessage.js";

/** Who is signed in, and the way out. */
export function UserMenu({ user }: { user: { displayName: string; username: string; role: string } }) {
  const signOut = trpc.auth.signOut.useMutation({
    onSuccess: () => window.location.assign("/sign-in"),
  });
  return (
    <div className="user-menu">
      <span className="user-name" title={`${user.username} · ${user.role}`}>
        {user.displayName} <span className="user-role">{user.role}</span>
      </span>
      <Link to="/account/tokens" className="header-link">
        Tokens
      </Link>
      <Link to="/account/password" className="header-link">
        Password
      </Link>
      <button
        type="button"
        className="btn btn-small btn-header"
        disabled={signOut.isPending}
        onClick={() => signOut.mutate()}
      >
        Sign out
      </button>
      {signOut.error ? (
        <span className="inline-error" role="alert">
          {errorText(signOut.error)}
        </span>
      ) : null}
    </div>
  );
}
