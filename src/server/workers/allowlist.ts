import { DomainError } from "../errors.js";

/** The host part of a URL as the allowlist compares it: lower case, IPv6 without brackets. */
function hostOf(url: URL): string {
  return url.hostname.toLowerCase().replace(/^\[|\]$/g, "");
}

/**
 * Refuses a worker URL that is not plain http(s) to an allowed host. Registration calls it, and so
 * does every outbound request, so a row changed behind the API's back still cannot make the
 * server call elsewhere: the server is never an open proxy.
 */
export function assertAllowedWorkerUrl(
  raw: string,
  allowedHosts: readonly string[],
  /** Whose URL it is, in the messages: webhooks go through the same policy. */
  subject: "Worker" | "Webhook" = "Worker",
): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new DomainError("BAD_REQUEST", `${subject} URL "${raw}" is not a valid URL.`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new DomainError(
      "BAD_REQUEST",
      `${subject} URL must use http or https, not ${url.protocol.replace(":", "")}.`,
    );
  }
  if (url.username || url.password) {
    throw new DomainError(
      "BAD_REQUEST",
      subject === "Worker"
        ? "Worker URL must not contain credentials; give the token separately."
        : `${subject} URL must not contain credentials.`,
    );
  }
  const host = hostOf(url);
  if (!allowedHosts.includes(host)) {
    throw new DomainError(
      "BAD_REQUEST",
      `${subject} host "${host}" is not in WORKER_ALLOWED_HOSTS (${allowedHosts.join(", ") || "empty"}). ` +
        "Add it there (comma list) and restart to allow it.",
    );
  }
  return url;
}

/** The base URL with a path appended, keeping any path prefix the worker is mounted under. */
export function workerEndpoint(base: URL, path: "execute" | "cancel" | "health"): string {
  const prefix = base.pathname.endsWith("/") ? base.pathname : `${base.pathname}/`;
  return new URL(`${prefix}${path}`, base).toString();
}
