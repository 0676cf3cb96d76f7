import http from "node:http";

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** The tRPC answer's `json` (superjson-wrapped result or error), when the body is one. */
  json: unknown;
}

/**
 * One HTTP request with full control of its headers and, through `localAddress`, of the client
 * address the server sees (Linux routes all of 127/8 to lo, so 127.0.0.2 is a second "machine").
 */
export function rawRequest(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string; localAddress?: string } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: opts.method ?? "GET",
        headers: {
          ...(opts.body !== undefined ? { "content-type": "application/json" } : {}),
          ...opts.headers,
        },
        ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString("utf8");
          let json: unknown;
          try {
            const parsed = JSON.parse(body) as { result?: { data?: { json?: unknown } }; error?: { json?: unknown } };
            json = parsed.result?.data?.json ?? parsed.error?.json ?? parsed;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
        });
      },
    );
    req.on("error", reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** A tRPC mutation over plain HTTP: `{ json: input }` as the body. */
export function mutation(
  baseUrl: string,
  path: string,
  input: unknown,
  opts: { headers?: Record<string, string>; localAddress?: string } = {},
): Promise<RawResponse> {
  return rawRequest(`${baseUrl}/trpc/${path}`, { method: "POST", body: JSON.stringify({ json: input }), ...opts });
}

/** Signs in over HTTP and returns the `agency_session=…` cookie pair (or the refusal). */
export async function signInCookie(
  baseUrl: string,
  username: string,
  password: string,
  opts: { localAddress?: string; origin?: string } = {},
): Promise<{ cookie: string | null; res: RawResponse }> {
  const res = await mutation(
    baseUrl,
    "auth.signIn",
    { username, password },
    {
      ...(opts.origin ? { headers: { origin: opts.origin } } : {}),
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    },
  );
  const setCookie = res.headers["set-cookie"]?.[0];
  return { cookie: res.status === 200 && setCookie ? (setCookie.split(";")[0] as string) : null, res };
}

/** The error code of a tRPC answer (`FORBIDDEN`, …), or "OK". */
export function trpcCode(res: RawResponse): string {
  if (res.status === 200) return "OK";
  const data = (res.json as { data?: { code?: string } } | undefined)?.data;
  return data?.code ?? `HTTP ${res.status}`;
}
