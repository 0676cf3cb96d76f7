import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { relative } from "node:path";

// `npm test`: every check and suite in order, then one line with the totals of all of them.
// A check (build, typecheck, lint, placeholder scan) counts as one; a suite counts its test cases.

const REPORTS = ".reports";
const VITEST_JSON = `${REPORTS}/vitest.json`;
const E2E_JSON = "test-results/e2e.json";

interface Outcome {
  name: string;
  passed: number;
  failed: number;
  skipped: number;
  seconds: number;
  /** "file › test: first line of the error" for each failed test, repeated in the summary. */
  failures?: string[];
}

const outcomes: Outcome[] = [];

function run(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: "inherit", env: process.env });
  return r.status === 0;
}

function step(name: string, cmd: string, args: string[]): boolean {
  console.log(`\n=== ${name}: ${cmd} ${args.join(" ")}`);
  const t0 = Date.now();
  const ok = run(cmd, args);
  outcomes.push({ name, passed: ok ? 1 : 0, failed: ok ? 0 : 1, skipped: 0, seconds: (Date.now() - t0) / 1000 });
  return ok;
}

function readJson<T>(file: string): T | null {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as T;
  } catch {
    return null;
  }
}

function suite(
  name: string,
  cmd: string,
  args: string[],
  report: string,
  count: (json: never) => Omit<Outcome, "name" | "seconds">,
  failures: (json: never) => string[],
) {
  console.log(`\n=== ${name}: ${cmd} ${args.join(" ")}`);
  rmSync(report, { force: true });
  const t0 = Date.now();
  const ok = run(cmd, args);
  const json = readJson<never>(report);
  const counted = json ? count(json) : { passed: 0, failed: 1, skipped: 0 };
  // A runner that failed without a failing test (a crash, a setup error) still fails the run.
  if (!ok && counted.failed === 0) counted.failed = 1;
  outcomes.push({ name, ...counted, seconds: (Date.now() - t0) / 1000, failures: json ? failures(json) : [] });
}

interface VitestReport {
  testResults: {
    name: string;
    status: string;
    message?: string;
    assertionResults: { fullName: string; status: string; failureMessages: string[] }[];
  }[];
}

interface PlaywrightSuite {
  file?: string;
  suites?: PlaywrightSuite[];
  specs?: {
    title: string;
    file: string;
    line: number;
    ok: boolean;
    tests: { results: { error?: { message?: string } }[] }[];
  }[];
}
interface PlaywrightReport {
  suites: PlaywrightSuite[];
}

function playwrightFailures(suites: PlaywrightSuite[] = []): string[] {
  return suites.flatMap((s) => [
    ...(s.specs ?? [])
      .filter((spec) => !spec.ok)
      .map((spec) => {
        const error = spec.tests.flatMap((t) => t.results).find((r) => r.error)?.error?.message;
        return `${spec.file}:${spec.line} › ${spec.title}: ${firstLine(error)}`;
      }),
    ...playwrightFailures(s.suites),
  ]);
}

/** The first non-empty line of an error, without terminal colours, cut to one screen line. */
function firstLine(text: string | undefined): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colour codes
  const plain = (text ?? "").replace(/\u001b\[[0-9;]*m/g, "");
  const line = plain.split("\n").find((l) => l.trim() !== "") ?? "(no message)";
  return line.trim().slice(0, 240);
}

mkdirSync(REPORTS, { recursive: true });
const built = step("build", "npm", ["run", "-s", "build"]);
step("typecheck", "npx", ["tsc", "-p", "."]);
step("lint", "npx", ["biome", "check", "."]);
step("placeholder scan", "npx", ["tsx", "scripts/check-placeholders.ts"]);

suite(
  "unit + integration (vitest)",
  "npx",
  ["vitest", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${VITEST_JSON}`],
  VITEST_JSON,
  (j: { numPassedTests: number; numFailedTests: number; numPendingTests: number; numTodoTests: number }) => ({
    passed: j.numPassedTests,
    failed: j.numFailedTests,
    skipped: j.numPendingTests + j.numTodoTests,
  }),
  (j: VitestReport) =>
    j.testResults.flatMap((file) => {
      const where = relative(process.cwd(), file.name);
      const tests = file.assertionResults
        .filter((a) => a.status === "failed")
        .map((a) => `${where} › ${a.fullName}: ${firstLine(a.failureMessages[0])}`);
      // A file that failed outside any test (an import error, a hook) has no failed assertion to name.
      return tests.length === 0 && file.status === "failed" ? [`${where}: ${firstLine(file.message)}`] : tests;
    }),
);

if (built && existsSync("dist/web/index.html")) {
  suite(
    "end-to-end (playwright)",
    "npx",
    ["playwright", "test"],
    E2E_JSON,
    (j: { stats: { expected: number; unexpected: number; flaky: number; skipped: number } }) => ({
      passed: j.stats.expected + j.stats.flaky,
      failed: j.stats.unexpected,
      skipped: j.stats.skipped,
    }),
    (j: PlaywrightReport) => playwrightFailures(j.suites),
  );
} else {
  outcomes.push({
    name: "end-to-end (playwright): not run, the build failed",
    passed: 0,
    failed: 1,
    skipped: 0,
    seconds: 0,
  });
}

console.log("\n=== summary");
for (const o of outcomes) {
  const mark = o.failed ? "FAIL" : "ok  ";
  console.log(
    `${mark} ${o.name.padEnd(40)} ${o.passed} passed, ${o.failed} failed, ${o.skipped} skipped  (${o.seconds.toFixed(1)} s)`,
  );
  for (const f of o.failures ?? []) console.log(`       ✗ ${f}`);
}
const total = (k: "passed" | "failed" | "skipped") => outcomes.reduce((n, o) => n + o[k], 0);
console.log(`${total("passed")} passed, ${total("failed")} failed, ${total("skipped")} skipped`);
process.exit(total("failed") ? 1 : 0);
