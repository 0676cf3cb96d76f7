import { isRouteErrorResponse, Link, useRouteError } from "react-router-dom";

/** Unknown addresses and errors thrown while rendering a page. */
export function RouteError() {
  const error = useRouteError();
  const notFound = error === undefined || (isRouteErrorResponse(error) && error.status === 404);
  return (
    <div className="page">
      <h1>{notFound ? "Page not found" : "Something went wrong"}</h1>
      <p>
        {notFound
          ? "There is no page at this address."
          : error instanceof Error
            ? error.message
            : "The page failed to render. Reload to try again."}
      </p>
      <p>
        <Link to="/tasks">Go to the task list</Link>
      </p>
    </div>
  );
}
