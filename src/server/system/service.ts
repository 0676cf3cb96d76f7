import { readFileSync } from "node:fs";
import type { Database } from "../db/database.js";
import { migrationStatus } from "../db/migrate.js";

const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string };
export const VERSION = pkg.version;

export interface Readiness {
  ready: boolean;
  reason?: string;
  dbLatencyMs?: number;
}

export class SystemService {
  private readonly startedAt = Date.now();

  constructor(private readonly db: Database) {}

  /** Database round trip, and every migration applied. */
  async readiness(): Promise<Readiness> {
    const t0 = performance.now();
    try {
      await this.db.query("SELECT 1");
      const dbLatencyMs = Math.round((performance.now() - t0) * 100) / 100;
      const status = await migrationStatus(this.db);
      if (status.problems.length) return { ready: false, reason: status.problems.join("; "), dbLatencyMs };
      if (status.pending.length) {
        return { ready: false, reason: `migrations not applied: ${status.pending.join(", ")}`, dbLatencyMs };
      }
      return { ready: true, dbLatencyMs };
    } catch (err) {
      return { ready: false, reason: `database unreachable: ${(err as Error).message}` };
    }
  }

  async health() {
    const r = await this.readiness();
    return {
      status: r.ready ? ("ok" as const) : ("degraded" as const),
      version: VERSION,
      uptimeSec: Math.round((Date.now() - this.startedAt) / 1000),
      node: process.version,
      database: { kind: this.db.kind, ok: r.ready, latencyMs: r.dbLatencyMs ?? null, reason: r.reason ?? null },
    };
  }
}
