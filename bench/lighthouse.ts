/**
 * `npm run bench:lighthouse`: Lighthouse's performance score for the console's first page (/tasks) and a
 * task's page, with its default mobile settings (Moto G Power screen, simulated 150 ms round trip,
 * 1.6 Mbit/s, 4 × CPU slowdown), against the local Chromium. The issue's target is ≥ 95 on both pages.
 *
 * Runs the real server (`src/server/main.ts`, the built console in dist/web: `npm run build` first) on a fresh
 * data directory, signs in, makes one task, then audits each page BENCH_RUNS times (default 3), alternating
 * the pages, each run in a fresh Chromium profile (cold cache). Prints the median score with the metrics that
 * make it up, and the ratio of the median score to the target. Lighthouse is a benchmark-only dependency:
 * `npm run bench:setup` installs it in bench/node_modules.
 */
import { launch } from "chrome-launcher";
import lighthouse from "lighthouse";
import { ServerProcess } from "../e2e/server.js";
import { positiveInt } from "./lib/env.js";

const RUNS = positiveInt("BENCH_RUNS", 3);
const TARGET = 95;
const NO_WORKER = "bench-none";
const METRICS = [
  ["first-contentful-paint", "FCP"],
  ["largest-contentful-paint", "LCP"],
  ["total-blocking-time", "TBT"],
  ["cumulative-layout-shift", "CLS"],
  ["speed-index", "SI"],
] as const;

interface Audit {
  score: number;
  metrics: Record<string, string>;
  values: Record<string, number>;
}

async function signIn(server: ServerProcess): Promise<string> {
  const res = await fetch(`${server.url}/trpc/auth.signIn`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: server.url },
    body: JSON.stringify({ json: { username: server.admin.username, password: server.admin.password } }),
  });
  if (!res.ok) throw new Error(`signing in failed: ${res.status} ${await res.text()}`);
  const cookies = res.headers.getSetCookie().map((c) => c.split(";")[0]);
  if (cookies.length === 0) throw new Error("signing in set no cookie");
  return cookies.join("; ");
}

async function audit(url: string, cookie: string): Promise<Audit> {
  const chrome = await launch({
    chromePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    chromeFlags: ["--headless=new", "--no-sandbox", "--disable-gpu"],
  });
  try {
    const result = await lighthouse(url, {
      port: chrome.port,
      output: "json",
      logLevel: "error",
      onlyCategories: ["performance"],
      extraHeaders: { Cookie: cookie },
    });
    if (!result) throw new Error(`Lighthouse returned nothing for ${url}`);
    const { lhr } = result;
    if (lhr.runtimeError) throw new Error(`Lighthouse: ${lhr.runtimeError.code} ${lhr.runtimeError.message}`);
    const score = Math.round((lhr.categories.performance?.score ?? Number.NaN) * 100);
    const metrics: Record<string, string> = {};
    const values: Record<string, number> = {};
    for (const [id, name] of METRICS) {
      metrics[name] = lhr.audits[id]?.displayValue ?? "?";
      values[name] = lhr.audits[id]?.numericValue ?? Number.NaN;
    }
    return { score, metrics, values };
  } finally {
    chrome.kill();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

async function main(): Promise<void> {
  const server = await ServerProcess.launch();
  try {
    const cookie = await signIn(server);
    const task = await server.api.tasks.create.mutate({
      title: "Lighthouse sample",
      capability: NO_WORKER,
      description: "A task that waits in the queue, so its page has something to show.",
    });
    const pages = [
      ["/tasks", `${server.url}/tasks`],
      ["task detail", `${server.url}/tasks/${task.id}`],
    ] as const;
    const audits = new Map<string, Audit[]>(pages.map(([name]) => [name, []]));
    const [load] = (await import("node:os")).loadavg();
    console.log(`lighthouse: performance, mobile defaults, median of ${RUNS}, load ${load?.toFixed(2)}`);
    for (let i = 0; i < RUNS; i++) {
      // Alternate the order, so neither page always runs on the warmer machine.
      for (const [name, url] of i % 2 ? [...pages].reverse() : pages) audits.get(name)?.push(await audit(url, cookie));
    }
    for (const [name] of pages) {
      const runs = audits.get(name) ?? [];
      const score = median(runs.map((r) => r.score));
      const metrics = METRICS.map(([, m]) => {
        const v = median(runs.map((r) => r.values[m] ?? Number.NaN));
        return `${m} ${m === "CLS" ? v.toFixed(3) : `${Math.round(v)} ms`}`;
      }).join(", ");
      console.log(
        `  ${name.padEnd(12)} score ${score} (runs ${runs.map((r) => r.score).join(", ")}; target ≥ ${TARGET}, ratio ${(score / TARGET).toFixed(2)})  ${metrics}`,
      );
    }
    console.log(
      `load after: ${(await import("node:os"))
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}`,
    );
  } finally {
    await server.dispose();
  }
}

await main();
