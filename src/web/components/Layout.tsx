import { Suspense } from "react";
import { NavLink, Outlet } from "react-router-dom";
import { ConnectionBadge } from "./ConnectionBadge.js";
import { HealthBadge } from "./HealthBadge.js";

/** Top-level pages in the navigation. A page appears here once it exists. */
const NAV_ITEMS: readonly { to: string; label: string }[] = [{ to: "/tasks", label: "Tasks" }];

export function Layout() {
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="app-header">
        <span className="brand">Agent Agency</span>
        <nav aria-label="Main">
          <ul className="nav-list">
            {NAV_ITEMS.map((item) => (
              <li key={item.to}>
                <NavLink to={item.to} className="nav-link">
                  {item.label}
                </NavLink>
              </li>
            ))}
          </ul>
        </nav>
        <div className="header-status">
          <HealthBadge />
          <ConnectionBadge />
        </div>
      </header>
      <main id="main" className="app-main" tabIndex={-1}>
        <Suspense fallback={<p className="loading">Loading…</p>}>
          <Outlet />
        </Suspense>
      </main>
    </>
  );
}
