import { Suspense, useEffect, useId, useRef, useState } from "react";
import { Navigate, NavLink, Outlet, useLocation } from "react-router-dom";
import { hasRole, type Role } from "../../shared/roles.js";
import { ApprovalCount } from "../approvals/ApprovalCount.js";
import { trpc } from "../trpc.js";
import { ConnectionBadge } from "./ConnectionBadge.js";
import { ErrorMessage } from "./ErrorMessage.js";
import { HealthBadge } from "./HealthBadge.js";
import { UserMenu } from "./UserMenu.js";
import { useFocusHeading } from "./useFocusHeading.js";

/** Top-level pages in the navigation. A page appears here once it exists. */
const NAV_ITEMS: readonly { to: string; label: string; role?: Role }[] = [
  { to: "/tasks", label: "Tasks" },
  { to: "/approvals", label: "Approvals", role: "operator" },
  { to: "/workers", label: "Workers" },
  { to: "/live-metrics", label: "Metrics" },
  { to: "/chat", label: "Chat" },
  { to: "/audit", label: "Audit" },
  { to: "/admin/users", label: "Admin", role: "admin" },
];

export function Layout() {
  const location = useLocation();
  const main = useRef<HTMLElement>(null);
  useFocusHeading(main);
  const me = trpc.auth.me.useQuery(undefined, { staleTime: 60_000, retry: false });
  const menu = useHeaderMenu(location.pathname, location.search);
  if (me.data === null) {
    const next = `${location.pathname}${location.search}`;
    return <Navigate to={`/sign-in?next=${encodeURIComponent(next)}`} replace />;
  }
  // A password someone else set (the bootstrap's one-time password) is changed before anything else.
  if (me.data?.user.mustChangePassword && me.data.via === "session" && location.pathname !== "/account/password") {
    const next = `${location.pathname}${location.search}`;
    return <Navigate to={`/account/password?next=${encodeURIComponent(next)}`} replace />;
  }

  let content = (
    <Suspense fallback={<p className="loading">Loading…</p>}>
      <Outlet />
    </Suspense>
  );
  if (me.isPending) content = <p className="loading">Loading…</p>;
  if (me.error) content = <ErrorMessage title="Could not check who is signed in:" error={me.error} />;

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="app-header" data-menu-open={menu.open ? "" : undefined}>
        <span className="brand">Agent Agency</span>
        {/* Shown only on narrow screens (styles.css): the navigation and the user menu fold behind it. */}
        <button
          ref={menu.button}
          type="button"
          className="menu-toggle"
          aria-expanded={menu.open}
          aria-controls={`${menu.id}-nav ${menu.id}-user`}
          onClick={() => menu.setOpen(!menu.open)}
        >
          <span className="menu-icon" aria-hidden="true" />
          Menu
        </button>
        <nav aria-label="Main" id={`${menu.id}-nav`} className="main-nav">
          <ul className="nav-list">
            {NAV_ITEMS.filter((item) => !item.role || (me.data && hasRole(me.data.user.role, item.role))).map(
              (item) => (
                <li key={item.to}>
                  <NavLink to={item.to} className="nav-link">
                    {item.label}
                    {item.to === "/approvals" ? <ApprovalCount /> : null}
                  </NavLink>
                </li>
              ),
            )}
          </ul>
        </nav>
        <div className="header-status">
          <HealthBadge />
          <ConnectionBadge />
        </div>
        <div id={`${menu.id}-user`} className="header-user">
          {me.data ? <UserMenu user={me.data.user} /> : null}
        </div>
      </header>
      <main id="main" ref={main} className="app-main" tabIndex={-1}>
        {content}
      </main>
    </>
  );
}

/**
 * The narrow-screen menu: a disclosure that closes when the page changes (a link in it was followed) and on
 * Escape, which hands focus back to its button. On wide screens the button is hidden and the state unused.
 */
function useHeaderMenu(pathname: string, search: string) {
  const id = useId();
  const [open, setOpen] = useState(false);
  const button = useRef<HTMLButtonElement>(null);
  // biome-ignore lint/correctness/useExhaustiveDependencies: closes whenever the address changes.
  useEffect(() => setOpen(false), [pathname, search]);
  useEffect(() => {
    if (!open) return;
    const onKeyDown = (e: KeyboardEvent) => {
      if (e.key !== "Escape") return;
      setOpen(false);
      button.current?.focus();
    };
    document.addEventListener("keydown", onKeyDown);
    return () => document.removeEventListener("keydown", onKeyDown);
  }, [open]);
  return { id, open, setOpen, button };
}
