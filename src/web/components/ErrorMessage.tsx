import type { ReactNode } from "react";

/** Messages browsers give for a request that never reached the server (Chromium, Firefox, Safari, undici). */
const NETWORK_FAILURE =
  /^(Failed to fetch|fetch failed|NetworkError when attempting to fetch resource\.?|Load failed|Network request failed)$/i;

/**
 * What to tell the operator about an error: the server's message, or, when the request never reached the
 * server, that it cannot be reached (never the browser's bare "Failed to fetch").
 */
export function errorText(error: { message: string }): string {
  return NETWORK_FAILURE.test(error.message.trim())
    ? "The server cannot be reached (it may be restarting); try again in a moment."
    : error.message;
}

/** An answer refusing an action ("The server refused: …"), or that the server cannot be reached. */
export function refusalText(error: { message: string }): string {
  const text = errorText(error);
  return text === error.message ? `The server refused: ${error.message}` : text;
}

/** An error the operator can act on: what failed, and the server's message. */
export function ErrorMessage({
  title,
  error,
  children,
}: {
  title: string;
  error?: { message: string } | null;
  children?: ReactNode;
}) {
  return (
    <div className="notice notice-error" role="alert">
      <strong>{title}</strong>
      {error ? <span> {errorText(error)}</span> : null}
      {children}
    </div>
  );
}
