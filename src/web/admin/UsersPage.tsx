import { type FormEvent, useState } from "react";
import { Link } from "react-router-dom";
import { userCreateInputSchema } from "../../shared/auth.js";
import { ROLES, type Role } from "../../shared/roles.js";
import { ErrorMessage, errorText, refusalText } from "../components/ErrorMessage.js";
import { Time } from "../components/Time.js";
import { useHasRole, useMe } from "../components/useMe.js";
import { type RouterOutputs, trpc } from "../trpc.js";

type User = RouterOutputs["users"]["list"][number];

const ROLE_HELP: Record<Role, string> = {
  viewer: "reads everything, changes nothing",
  operator: "submits, cancels and retries tasks, chats",
  admin: "also manages workers, users, tokens and verdict overrides",
};

export default function UsersPage() {
  const isAdmin = useHasRole("admin");
  const users = trpc.users.list.useQuery(undefined, { enabled: isAdmin });
  const [reset, setReset] = useState<ResetResult | null>(null);
  if (!isAdmin) {
    return (
      <div className="page page-narrow">
        <h1>Users</h1>
        <ErrorMessage title="Managing users needs the admin role." />
      </div>
    );
  }
  return (
    <div className="page">
      <div className="page-head">
        <h1>Users</h1>
        <Link to="/account/tokens" className="btn">
          API tokens
        </Link>
        <Link to="/admin/webhooks" className="btn">
          Webhooks
        </Link>
      </div>
      <CreateUser />
      {users.error ? <ErrorMessage title="Could not load the users:" error={users.error} /> : null}
      {users.isPending ? <p className="loading">Loading users…</p> : null}
      {reset ? <ResetNotice reset={reset} onDone={() => setReset(null)} /> : null}
      {users.data ? (
        <div className="table-wrap">
          <table className="task-table">
            <thead>
              <tr>
                <th scope="col">Username</th>
                <th scope="col">Name</th>
                <th scope="col">Role</th>
                <th scope="col">Status</th>
                <th scope="col">Created</th>
                <th scope="col">Last sign-in</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {users.data.map((u) => (
                <UserRow key={u.id} user={u} onReset={setReset} />
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </div>
  );
}

interface ResetResult {
  username: string;
  password: string;
}

/** The temporary password of the last reset, shown once above the table until dismissed. */
function ResetNotice({ reset, onDone }: { reset: ResetResult; onDone: () => void }) {
  return (
    <div className="notice notice-warn token-secret" role="status">
      <p>
        <strong>
          Temporary password for {reset.username}: give it to them in person. It is not shown again, and they must
          choose their own when they sign in with it.
        </strong>
      </p>
      <div className="secret-row">
        <input
          readOnly
          className="mono"
          aria-label={`Temporary password for ${reset.username}`}
          value={reset.password}
          onFocus={(e) => e.currentTarget.select()}
        />
        <button type="button" className="btn" onClick={onDone}>
          Done
        </button>
      </div>
    </div>
  );
}

function UserRow({ user: u, onReset }: { user: User; onReset: (r: ResetResult) => void }) {
  const me = useMe();
  const utils = trpc.useUtils();
  const update = trpc.users.update.useMutation({ onSuccess: () => utils.users.list.invalidate() });
  const disable = trpc.users.disable.useMutation({ onSuccess: () => utils.users.list.invalidate() });
  const [confirmReset, setConfirmReset] = useState(false);
  const [ended, setEnded] = useState<number | null>(null);
  const resetPassword = trpc.users.resetPassword.useMutation({
    onSuccess: (r) => {
      setConfirmReset(false);
      onReset({ username: r.user.username, password: r.temporaryPassword });
      void utils.users.list.invalidate();
    },
  });
  const endSessions = trpc.users.endSessions.useMutation({ onSuccess: (r) => setEnded(r.endedSessions) });
  const error = update.error ?? disable.error ?? resetPassword.error ?? endSessions.error;
  const self = me?.id === u.id;
  return (
    <tr data-username={u.username}>
      <td>
        <code>{u.username}</code>
        {self ? <span className="muted"> (you)</span> : null}
      </td>
      <td>{u.displayName}</td>
      <td>
        <select
          aria-label={`Role of ${u.username}`}
          value={u.role}
          disabled={update.isPending}
          onChange={(e) => update.mutate({ id: u.id, role: e.target.value as Role })}
        >
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
      </td>
      <td>
        {u.disabled ? (
          <span className="tag" data-tone="bad">
            Disabled
          </span>
        ) : (
          <span className="tag" data-tone="ok">
            Active
          </span>
        )}
        {u.mustChangePassword ? <span className="muted small"> must change password</span> : null}
      </td>
      <td>
        <Time value={u.createdAt} short />
      </td>
      <td>
        <Time value={u.lastSignInAt} short />
      </td>
      <td className="col-actions">
        {u.disabled ? (
          <button
            type="button"
            className="btn btn-small"
            disabled={update.isPending}
            onClick={() => update.mutate({ id: u.id, disabled: false })}
          >
            Enable<span className="visually-hidden"> {u.username}</span>
          </button>
        ) : (
          <button
            type="button"
            className="btn btn-small btn-danger"
            disabled={disable.isPending}
            onClick={() => disable.mutate({ id: u.id })}
          >
            Disable<span className="visually-hidden"> {u.username}</span>
          </button>
        )}
        {self ? null : confirmReset ? (
          <>
            <button
              type="button"
              className="btn btn-small btn-danger"
              disabled={resetPassword.isPending}
              onClick={() => resetPassword.mutate({ id: u.id })}
            >
              Confirm reset<span className="visually-hidden"> of {u.username}'s password</span>
            </button>
            <button type="button" className="btn btn-small" onClick={() => setConfirmReset(false)}>
              Keep<span className="visually-hidden"> {u.username}'s password</span>
            </button>
          </>
        ) : (
          <button
            type="button"
            className="btn btn-small"
            title="Sets a temporary password and signs them out everywhere; they choose their own at next sign-in"
            onClick={() => setConfirmReset(true)}
          >
            Reset password<span className="visually-hidden"> of {u.username}</span>
          </button>
        )}
        <button
          type="button"
          className="btn btn-small"
          title="Signs them out in every browser; their API tokens keep working"
          disabled={endSessions.isPending}
          onClick={() => endSessions.mutate({ id: u.id })}
        >
          End sessions<span className="visually-hidden"> of {u.username}</span>
        </button>
        {ended !== null ? (
          <span className="muted small" role="status">
            {" "}
            {ended === 1 ? "1 session ended" : `${ended} sessions ended`}
          </span>
        ) : null}
        {error ? (
          <span className="inline-error" role="alert">
            {" "}
            {errorText(error)}
          </span>
        ) : null}
      </td>
    </tr>
  );
}

type CreateErrors = Partial<Record<"username" | "displayName" | "role" | "password", string>>;

function CreateUser() {
  const utils = trpc.useUtils();
  const [username, setUsername] = useState("");
  const [displayName, setDisplayName] = useState("");
  const [role, setRole] = useState<Role>("operator");
  const [password, setPassword] = useState("");
  const [errors, setErrors] = useState<CreateErrors>({});
  const [created, setCreated] = useState<string | null>(null);
  const create = trpc.users.create.useMutation({
    onSuccess: async (u) => {
      await utils.users.list.invalidate();
      setCreated(u.username);
      setUsername("");
      setDisplayName("");
      setPassword("");
    },
  });

  const submit = (e: FormEvent) => {
    e.preventDefault();
    setCreated(null);
    create.reset();
    const parsed = userCreateInputSchema.safeParse({
      username,
      role,
      password,
      ...(displayName.trim() ? { displayName } : {}),
    });
    if (!parsed.success) {
      const next: CreateErrors = {};
      for (const i of parsed.error.issues) next[i.path[0] as keyof CreateErrors] ??= i.message;
      setErrors(next);
      return;
    }
    setErrors({});
    create.mutate(parsed.data);
  };
  const aria = (k: keyof CreateErrors) => ({
    "aria-invalid": errors[k] ? true : undefined,
    "aria-describedby": `uc-${k}-error`,
  });
  const err = (k: keyof CreateErrors) => (
    <p id={`uc-${k}-error`} className="field-error">
      {errors[k] ?? ""}
    </p>
  );

  return (
    <form className="form-section admin-form" onSubmit={submit} noValidate aria-label="Create a user">
      <h2 className="section-title">Create a user</h2>
      <div className="form-row">
        <div className="field">
          <label htmlFor="uc-username">Username</label>
          <input
            id="uc-username"
            value={username}
            maxLength={64}
            onChange={(e) => setUsername(e.target.value)}
            {...aria("username")}
          />
          {err("username")}
        </div>
        <div className="field">
          <label htmlFor="uc-displayName">Display name</label>
          <input
            id="uc-displayName"
            value={displayName}
            maxLength={128}
            onChange={(e) => setDisplayName(e.target.value)}
            {...aria("displayName")}
          />
          {err("displayName")}
        </div>
        <div className="field">
          <label htmlFor="uc-role">Role</label>
          <select id="uc-role" value={role} onChange={(e) => setRole(e.target.value as Role)} {...aria("role")}>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
          <p className="hint">{ROLE_HELP[role]}</p>
          {err("role")}
        </div>
        <div className="field">
          <label htmlFor="uc-password">Initial password</label>
          <input
            id="uc-password"
            type="password"
            autoComplete="new-password"
            value={password}
            maxLength={256}
            onChange={(e) => setPassword(e.target.value)}
            {...aria("password")}
          />
          {err("password")}
        </div>
      </div>
      <p className="hint">
        Give the initial password to the person in person; they must choose their own when they first sign in.
      </p>
      <p className="field-error" role={create.error ? "alert" : undefined}>
        {create.error ? refusalText(create.error) : ""}
      </p>
      {created ? (
        <p className="ok-text" role="status">
          User {created} created.
        </p>
      ) : null}
      <div className="form-buttons">
        <button type="submit" className="btn btn-primary" disabled={create.isPending}>
          {create.isPending ? "Creating…" : "Create user"}
        </button>
      </div>
    </form>
  );
}
