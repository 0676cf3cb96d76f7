/**
 * The storage floor of bench/throughput.ts: the rows the agency writes for each task (the task, its
 * attempt, 4 events, 4 audit entries, 4 provenance records, and the task's and attempt's updates),
 * written by bare set-based SQL on one connection, in batches and transactions shaped like the
 * agency's (create; claim; end), with no dispatch, no HTTP, no hashing or signing in the client: the
 * rows are made by the server from generate_series (the unique hash from md5, the other digests and
 * signatures as constants of their real sizes). What the Postgres backend spends on them, per
 * table, is what any design that keeps these rows pays, however little its own code costs.
 *
 * CPU is the backend's on-CPU time from /proc/<pid>/schedstat (nanoseconds), read around each
 * statement, so every statement is charged to the table it writes.
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import pg from "pg";
import { openDatabase } from "../../src/server/db/database.js";
import { migrate } from "../../src/server/db/migrate.js";

export interface FloorOutcome {
  tasks: number;
  seconds: number;
  /** Backend CPU ms per task, by what the statements wrote. */
  cpuMs: Record<Table, number>;
  totalCpuMs: number;
}

type Table = "tasks" | "attempts" | "task_events" | "audit_entries" | "provenance_records" | "begin/commit";

const onCpuNs = (pid: number): number => Number(fs.readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[0]);

/** Column values of the sizes the agency stores (a SHA-256 hex digest, a base64 Ed25519 signature); only `hash` must be unique. */
const DIGEST = "d".repeat(64);
const SIGNATURE = `${"s".repeat(86)}==`;

/**
 * Runs the floor on `url` in a fresh schema `schema` (migrated like the agency's, then dropped):
 * `warmup` tasks, then the `tasks` measured, in batches of `batch`.
 */
export async function storageFloor(
  url: string,
  schema: string,
  opts: { tasks: number; warmup: number; batch: number },
): Promise<FloorOutcome> {
  const { tasks, warmup, batch } = opts;
  const db = await openDatabase({ url, schema });
  await migrate(db);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const cpu: Record<Table, number> = {
    tasks: 0,
    attempts: 0,
    task_events: 0,
    audit_entries: 0,
    provenance_records: 0,
    "begin/commit": 0,
  };
  try {
    await client.query(`SET search_path TO "${schema}"`);
    const [{ pid }] = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows as [{ pid: number }];
    let seq = 0;
    const run = async (table: Table, sql: string, params: unknown[] = []) => {
      const before = onCpuNs(pid);
      await client.query(sql, params);
      cpu[table] += onCpuNs(pid) - before;
    };
    /**
     * A state change's trail, `times` of each per task: audit entries, chain records (numbered on from
     * the last one, as the chain's head would give them) and events.
     */
    const trail = async (
      ids: string[],
      t: { action: string; kind: string; from: string; to: string; times: number },
    ) => {
      const each = `FROM unnest($1::uuid[]) AS id, generate_series(1, ${t.times}) AS g`;
      await run(
        "audit_entries",
        `INSERT INTO audit_entries (actor_kind, actor_id, action, resource_type, resource_id, before, after)
         SELECT 'system', 'engine', '${t.action}', 'task', id::text, jsonb_build_object('state', 'running', 'attempt', 1),
                jsonb_build_object('state', 'accepted', 'attempt', 1, 'worker', 'noop', 'tries', 1)
           ${each}`,
        [ids],
      );
      await run(
        "provenance_records",
        `INSERT INTO provenance_records (seq, kind, task_id, payload, payload_digest, prev_hash, hash, signature,
                key_id, created_at)
         SELECT $2::bigint + row_number() OVER (), '${t.kind}', id::text,
                jsonb_build_object('attempt', 1, 'attemptId', gen_random_uuid(), 'worker', 'noop',
                                   'status', 'completed', 'artifacts', '[]'::jsonb, 'summaryDigest', '${DIGEST}'),
                '${DIGEST}', '${DIGEST}', md5(id::text || '${t.kind}' || g) || md5(g || '${t.kind}' || id::text), '${SIGNATURE}', 'floor', now()
           ${each}`,
        [ids, seq],
      );
      seq += ids.length * t.times;
      await run(
        "task_events",
        `INSERT INTO task_events (task_id, type, from_state, to_state, actor, data)
         SELECT id, 'state_changed', '${t.from}', '${t.to}', 'system',
                jsonb_build_object('name', 'complete', 'attempt', 1, 'worker', 'noop', 'tries', 1, 'artifacts', 0)
           ${each}`,
        [ids],
      );
    };

    const write = async (count: number) => {
      for (let done = 0; done < count; done += batch) {
        const ids = Array.from({ length: Math.min(batch, count - done) }, () => randomUUID());
        // Create: the tasks, their audit entries, chain records and `created` events.
        await run("begin/commit", "BEGIN");
        await run(
          "tasks",
          `INSERT INTO tasks (id, title, description, priority, priority_rank, risk_tier, mode, capability, spec, created_by)
         SELECT id, 'floor ' || id, '', 'medium', 1, 2, 'chore', 'noop',
                jsonb_build_object('title', 'floor ' || id, 'description', '', 'priority', 'medium', 'riskTier', 2,
                                   'mode', 'chore', 'capability', 'noop', 'acceptance', '[]'::jsonb,
                                   'scope', jsonb_build_object('include', '[]'::jsonb, 'exclude', '[]'::jsonb),
                                   'budget', '{}'::jsonb, 'input', jsonb_build_object('i', 1)), 'bench'
           FROM unnest($1::uuid[]) AS id`,
          [ids],
        );
        await trail(ids, { action: "task.create", kind: "task.created", from: "queued", to: "queued", times: 1 });
        await run("begin/commit", "COMMIT");
        // Claim: running, a new attempt with its lease, audited, chained, an event.
        await run("begin/commit", "BEGIN");
        await run(
          "tasks",
          `UPDATE tasks SET state = 'running', attempt = attempt + 1, updated_at = now(), waiting_reason = NULL,
                state_reason = NULL, next_critique = NULL WHERE id = ANY($1::uuid[])`,
          [ids],
        );
        await run(
          "attempts",
          `INSERT INTO attempts (id, task_id, number, state, lease_owner, lease_expires_at, queued_at, started_at)
         SELECT gen_random_uuid(), id, 1, 'running', 'floor', now() + interval '30 seconds', now(), now()
           FROM unnest($1::uuid[]) AS id`,
          [ids],
        );
        await trail(ids, { action: "task.dispatch", kind: "task.dispatched", from: "queued", to: "running", times: 1 });
        await run("begin/commit", "COMMIT");
        // End: the attempt's result and verdict, the task accepted; two of each trail row (complete, verdict).
        await run("begin/commit", "BEGIN");
        await run(
          "attempts",
          `UPDATE attempts SET state = 'completed', finished_at = now(), tries = 1, summary = 'nothing to do',
                result = jsonb_build_object('status', 'completed'), verdict = 'accept',
                judgement = jsonb_build_object('verdict', 'accept', 'rationale', 'All judges passed.',
                                               'judges', '[]'::jsonb),
                lease_owner = NULL, lease_expires_at = NULL
          WHERE task_id = ANY($1::uuid[])`,
          [ids],
        );
        await run(
          "tasks",
          `UPDATE tasks SET state = 'accepted', updated_at = now(), state_reason = 'All judges passed.'
          WHERE id = ANY($1::uuid[])`,
          [ids],
        );
        await trail(ids, { action: "task.verdict", kind: "task.result", from: "running", to: "judging", times: 2 });
        await run("begin/commit", "COMMIT");
      }
    };
    // Warm, as both sides of the bench are: the new schema's catalog and plans cached on this connection.
    await write(warmup);
    for (const table of Object.keys(cpu) as Table[]) cpu[table] = 0;
    const t0 = performance.now();
    await write(tasks);
    const seconds = (performance.now() - t0) / 1000;
    const cpuMs = Object.fromEntries(Object.entries(cpu).map(([k, ns]) => [k, ns / 1e6 / tasks])) as Record<
      Table,
      number
    >;
    return { tasks, seconds, cpuMs, totalCpuMs: Object.values(cpuMs).reduce((a, b) => a + b, 0) };
  } finally {
    await client.end();
    await db.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await db.close();
  }
}
