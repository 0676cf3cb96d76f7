/**
 * `npm run bench:page-weight`: what a browser downloads, and how soon it paints, on a cold load of the
 * console's first page (/tasks) and of a task's page, with the server's compression and without it.
 *
 * Runs the real server (`src/server/main.ts`, the built console in dist/web: `npm run build` first) on a
 * fresh data directory, signs in, makes one task, then loads each page in a new browser context (empty
 * cache) with Playwright's Chromium, reading through the DevTools protocol: bytes transferred (the
 * `encodedDataLength` of every response, headers included), number of requests, first-contentful-paint
 * from the page's performance entries, and first content: when the page's own content (the task's link on
 * the list, its heading on its page) entered the DOM, noted by a MutationObserver installed before any script
 * (target ≤ 500 ms on loopback). "Without compression" sends `Accept-Encoding: identity`, so the
 * server answers with the files as they are (as it did for every client before the build precompressed
 * them). Each case runs BENCH_RUNS times (default 5), alternating; medians are printed, with the ratio
 * compressed / uncompressed. Two network settings: loopback as it is, and Lighthouse's mobile throttling
 * (150 ms round trip, 1.6 Mbit/s down, 750 kbit/s up).
 */
import { type CDPSession, chromium } from "@playwright/test";
import { ServerProcess } from "../e2e/server.js";
import { positiveInt } from "./lib/env.js";

const RUNS = positiveInt("BENCH_RUNS", 5);
/** The target for a full page load on loopback: the page's own content within 500 ms. */
const CONTENT_TARGET_MS = 500;
const NO_WORKER = "bench-none";

interface Load {
  bytes: number;
  requests: number;
  fcpMs: number;
  /** From navigation start to the first moment the page's own content (its task link or heading) is in the DOM. */
  contentMs: number;
  encodings: Set<string>;
}

/** What shows that a page has its content, not only its shell: an element of this tag holding this text. */
interface Content {
  tag: string;
  text: string;
}

/**
 * Runs in the page before its scripts: notes when the content element first enters the DOM. A string, not a
 * function: tsx compiles functions with a name helper that does not exist in the page.
 */
function watchForContent({ tag, text }: Content): string {
  return `(() => {
    const tag = ${JSON.stringify(tag)}, text = ${JSON.stringify(text)};
    const found = () => Array.from(document.getElementsByTagName(tag)).some((e) => e.textContent.trim() === text);
    const observer = new MutationObserver(() => {
      if (window.firstContentMs !== undefined || !found()) return;
      window.firstContentMs = performance.now();
      observer.disconnect();
    });
    observer.observe(document, { childList: true, subtree: true, characterData: true });
  })();`;
}

const NETWORKS = {
  loopback: null,
  "Lighthouse mobile (150 ms RTT, 1.6 Mbit/s)": {
    offline: false,
    latency: 150,
    downloadThroughput: (1.6 * 1024 * 1024) / 8,
    uploadThroughput: (750 * 1024) / 8,
  },
} as const;

/** Resolves once no request is in flight (a page's lazy chunks and its first queries included). */
async function quiet(cdp: CDPSession, inFlight: () => number, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (inFlight() > 0) {
    if (Date.now() > until) throw new Error(`requests still in flight after ${timeoutMs} ms`);
    await new Promise<void>((resolve) => {
      const done = () => {
        cdp.off("Network.loadingFinished", done);
        cdp.off("Network.loadingFailed", done);
        resolve();
      };
      cdp.on("Network.loadingFinished", done);
      cdp.on("Network.loadingFailed", done);
    });
  }
}

async function coldLoad(
  browser: Awaited<ReturnType<typeof chromium.launch>>,
  storageState: Awaited<ReturnType<Awaited<ReturnType<typeof browser.newContext>>["storageState"]>>,
  url: string,
  content: Content,
  opts: { compressed: boolean; network: (typeof NETWORKS)[keyof typeof NETWORKS] },
): Promise<Load> {
  const context = await browser.newContext({ storageState });
  try {
    const page = await context.newPage();
    await page.addInitScript(watchForContent(content));
    const cdp = await context.newCDPSession(page);
    await cdp.send("Network.enable");
    await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
    if (!opts.compressed) await cdp.send("Network.setExtraHTTPHeaders", { headers: { "Accept-Encoding": "identity" } });
    if (opts.network) await cdp.send("Network.emulateNetworkConditions", opts.network);
    const open = new Set<string>();
    const encodings = new Set<string>();
    let bytes = 0;
    let requests = 0;
    cdp.on("Network.requestWillBeSent", (e) => {
      if (e.request.url.startsWith("data:")) return;
      open.add(e.requestId);
      requests++;
    });
    cdp.on("Network.responseReceived", (e) => {
      const enc = Object.entries(e.response.headers).find(([k]) => k.toLowerCase() === "content-encoding")?.[1];
      if (e.response.url.includes("/assets/")) encodings.add(enc ?? "identity");
    });
    cdp.on("Network.loadingFinished", (e) => {
      if (!open.delete(e.requestId)) return;
      bytes += e.encodedDataLength;
    });
    cdp.on("Network.loadingFailed", (e) => open.delete(e.requestId));
    await page.goto(url, { waitUntil: "load" });
    await page.getByRole(content.tag === "a" ? "link" : "heading", { name: content.text, exact: true }).waitFor({
      timeout: 60_000,
    });
    await quiet(cdp, () => open.size);
    const { fcpMs, contentMs } = await page.evaluate(() => ({
      fcpMs: performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? Number.NaN,
      contentMs: (window as unknown as { firstContentMs?: number }).firstContentMs ?? Number.NaN,
    }));
    return { bytes, requests, fcpMs, contentMs, encodings };
  } finally {
    await context.close();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;

async function main(): Promise<void> {
  const server = await ServerProcess.launch();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
  });
  try {
    const signInContext = await browser.newContext();
    const res = await signInContext.request.post(`${server.url}/trpc/auth.signIn`, {
      data: { json: { username: server.admin.username, password: server.admin.password } },
    });
    if (!res.ok()) throw new Error(`signing in failed: ${res.status()} ${await res.text()}`);
    const storageState = await signInContext.storageState();
    await signInContext.close();
    const task = await server.api.tasks.create.mutate({
      title: "Page weight sample",
      capability: NO_WORKER,
      description: "A task that waits in the queue, so its page has something to show.",
    });

    const pages: [string, string, Content][] = [
      ["/tasks", `${server.url}/tasks`, { tag: "a", text: task.title }],
      ["task detail", `${server.url}/tasks/${task.id}`, { tag: "h1", text: task.title }],
    ];
    console.log(`page weight: cold loads, median of ${RUNS}, Chromium via the DevTools protocol`);
    for (const [networkName, network] of Object.entries(NETWORKS)) {
      console.log(`network: ${networkName}`);
      for (const [name, url, content] of pages) {
        const runs: Record<"compressed" | "identity", Load[]> = { compressed: [], identity: [] };
        for (let i = 0; i < RUNS; i++) {
          runs.compressed.push(await coldLoad(browser, storageState, url, content, { compressed: true, network }));
          runs.identity.push(await coldLoad(browser, storageState, url, content, { compressed: false, network }));
        }
        const row = (label: string, loads: Load[]) => {
          const enc = [...new Set(loads.flatMap((l) => [...l.encodings]))].join("/");
          return {
            line: `  ${name.padEnd(12)} ${label.padEnd(18)} ${kb(median(loads.map((l) => l.bytes))).padStart(9)} transferred, ${median(loads.map((l) => l.requests))} requests, first contentful paint ${median(loads.map((l) => l.fcpMs)).toFixed(0)} ms, first content ${median(loads.map((l) => l.contentMs)).toFixed(0)} ms (assets: ${enc})`,
            bytes: median(loads.map((l) => l.bytes)),
            fcp: median(loads.map((l) => l.fcpMs)),
            content: median(loads.map((l) => l.contentMs)),
          };
        };
        const c = row("compressed", runs.compressed);
        const u = row("uncompressed", runs.identity);
        console.log(c.line);
        console.log(u.line);
        console.log(
          `  ${name.padEnd(12)} ratio compressed/uncompressed: bytes ${(c.bytes / u.bytes).toFixed(2)}, first contentful paint ${(c.fcp / u.fcp).toFixed(2)}, first content ${(c.content / u.content).toFixed(2)}`,
        );
        if (!network) {
          console.log(
            `  ${name.padEnd(12)} first content ${c.content.toFixed(0)} ms compressed (target ≤ ${CONTENT_TARGET_MS} ms), ${(c.content - c.fcp).toFixed(0)} ms after first paint`,
          );
        }
      }
    }
  } finally {
    await browser.close();
    await server.dispose();
  }
}

await main();
