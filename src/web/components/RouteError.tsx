import { isRouteErrorResponse, Link, useRouteError } from "react-router-dom";

/** An address no route matches (the `*` route), or a loader's 404. */
export function NotFoundPage() {
  return (
    <div className="page">
      <h1 tabIndex={-1}>Page not found</h1>
      <p>There is no page at this address.</p>
      <p>
        <Link to="/tasks">Go to the task list</Link>
      </p>
    </div>
  );
}

/** Errors thrown while rendering a page. */
export function RouteError() {
  const error = useRouteError();
  if (isRouteErrorResponse(error) && error.status === 404) return <NotFoundPage />;
  return (
    <div className="page">
      <h1 tabIndex={-1}>Something went wrong</h1>
      <p>{error instanceof Error ? error.message : "The page failed to render. Reload to try again."}</p>
      <p>
        <Link to="/tasks">Go to the task list</Link>
      </p>
    </div>
  );
}
