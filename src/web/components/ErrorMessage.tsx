import type { ReactNode } from "react";

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
      {error ? <span> {error.message}</span> : null}
      {children}
    </div>
  );
}
