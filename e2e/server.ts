import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { createTRPCClient, httpBatchLink } from "@trpc/client";
import superjson from "superjson";
import type { AppRouter } from "../src/server/router.js";

/** How long a start may take; a machine shared with other work may need more (SERVER_READY_TIMEOUT_MS). */
const READY_TIMEOUT_MS = Number(process.env.SERVER_READY_TIMEOUT_MS) || 60_000;
const STOP_TIMEOUT_MS = 15_000;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The real server as its own process (`tsx src/server/main.ts`) on a fresh data directory.
 * It can be stopped with SIGTERM and started again on the same port and data, as an operator would.
 */
export class ServerProcess {
  private child: ChildProcess | null = null;
  private output: string[] = [];
  readonly url: string;
  readonly api: ReturnType<typeof createTRPCClient<AppRouter>>;

  /** The first admin's credentials, fixed for this data directory so they survive restarts. */
  readonly admin = { username: "admin", password: randomBytes(18).toString("base64url") };
  private readonly apiToken = randomBytes(32).toString("hex");

  private constructor(
    readonly port: number,
    readonly dataDir: string,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    this.api = createTRPCClient<AppRouter>({
      links: [
        httpBatchLink({
          url: `${this.url}/trpc`,
          transformer: superjson,
          headers: () => ({ authorization: `Bearer ${this.apiToken}` }),
        }),
      ],
    });
  }

  static async launch(): Promise<ServerProcess> {
    if (!existsSync("dist/web/index.html")) {
      throw new Error("The console is not built: run `npm run build` before the end-to-end tests.");
    }
    const server = new ServerProcess(await freePort(), mkdtempSync(path.join(os.tmpdir(), "agency-e2e-")));
    await server.start();
    return server;
  }

  /** Recent server output, for a failing test's message. */
  get log(): string {
    return this.output.join("").slice(-4000);
  }

  async start(): Promise<void> {
    if (this.child) throw new Error("The server is already running");
    this.output = [];
    const child = spawn(process.execPath, ["--import", "tsx", "src/server/main.ts"], {
      env: {
        ...process.env,
        PORT: String(this.port),
        HOST: "127.0.0.1",
        DATA_DIR: this.dataDir,
        DATABASE_URL: "",
        LOG_LEVEL: "warn",
        DEV: "0",
        // With sign-in on, the first start makes this admin and gives it this API token for `api`.
        AGENCY_ADMIN_PASSWORD: this.admin.password,
        AGENCY_BOOTSTRAP_TOKEN: this.apiToken,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    child.stdout?.on("data", (b: Buffer) => this.output.push(b.toString()));
    child.stderr?.on("data", (b: Buffer) => this.output.push(b.toString()));
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) {
        this.child = null;
        throw new Error(`The server exited with code ${child.exitCode} while starting:\n${this.log}`);
      }
      try {
        const res = await fetch(`${this.url}/readyz`);
        if (res.ok) return;
      } catch {
        // Not listening yet.
      }
      await sleep(200);
    }
    await this.stop();
    throw new Error(`The server was not ready within ${READY_TIMEOUT_MS / 1000} s:\n${this.log}`);
  }

  /** SIGTERM, then wait for the process to finish its graceful shutdown. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    if (child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
