import { Link } from "react-router-dom";

/** Where a page sits: its parent list as a link, then the page itself. */
export function Breadcrumb({ parent, to, current }: { parent: string; to: string; current: string }) {
  return (
    <nav className="breadcrumb" aria-label="Breadcrumb">
      <Link to={to}>{parent}</Link>
      <span aria-hidden="true"> / </span>
      <span aria-current="page">{current}</span>
    </nav>
  );
}
