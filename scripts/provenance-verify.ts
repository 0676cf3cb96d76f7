// Verifies the provenance log with public keys pinned outside the database it checks.
//   npm run provenance:verify -- --public-key key.pem              the database's log (DATABASE_URL or DATA_DIR, like
//                                                                 the server), trusting only that key (PEM or verifier key)
//   npm run provenance:verify -- --trusted-keys keys.txt           trusting the keys in the admin's file (one per line);
//                                                                 PROVENANCE_TRUSTED_KEYS_FILE, then DATA_DIR's
//                                                                 provenance-trusted-keys, are the defaults
//   npm run provenance:verify -- --checkpoint witness.txt          also: the log is a consistent extension of every
//                                                                 checkpoint in the file (truncation, rewrites)
//   npm run provenance:verify -- --rows                            also: the rows the records describe are unchanged
//   npm run provenance:verify -- --file log.jsonl --public-key key.pem
//                                                                 an exported log, with nothing but the key
// Exits 0 when everything verifies, 1 when something does not (each finding printed, with the first bad
// record), 2 on a usage error (no pinned key, unreadable file).
import { createReadStream, existsSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { loadConfig } from "../src/server/config.js";
import { openDatabase } from "../src/server/db/database.js";
import { migrate } from "../src/server/db/migrate.js";
import {
  type ExternalCheckpoint,
  type LogRecord,
  type LogReport,
  parseExportLines,
  verifyLog,
} from "../src/server/provenance/log.js";
import { type PinnedKey, parseTrustedKeys, splitNotes } from "../src/server/provenance/note.js";
import { databaseRecords } from "../src/server/provenance/records.js";
import { type RowsReport, verifyRows } from "../src/server/provenance/rows.js";
import { trustedKeysFile } from "../src/server/provenance/setup.js";

class UsageError extends Error {}

const HOW_TO_PIN =
  "Pin the provenance key outside the database: --public-key FILE (the PEM from GET /provenance/public-key, or the " +
  "verifier key name+hash+key the server printed at first start) or --trusted-keys FILE (one key per line; " +
  "PROVENANCE_TRUSTED_KEYS_FILE sets a default). A key read from the database being checked proves nothing.";

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new UsageError(`${what} ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"}).`);
  }
}

function pinnedKeys(publicKeys: string[], trusted: string | undefined, dataDir: () => string): PinnedKey[] {
  const keys: PinnedKey[] = [];
  const load = (file: string, what: string) => {
    try {
      keys.push(...parseTrustedKeys(readText(file, what), file));
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new UsageError((err as Error).message);
    }
  };
  for (const f of publicKeys) load(f, "The public key");
  if (trusted) load(trusted, "The trusted-keys file");
  if (!publicKeys.length && !trusted) {
    const fromEnv = process.env.PROVENANCE_TRUSTED_KEYS_FILE;
    if (fromEnv) load(fromEnv, "The trusted-keys file (PROVENANCE_TRUSTED_KEYS_FILE)");
    else {
      const file = trustedKeysFile({ dataDir: dataDir() });
      if (existsSync(file)) {
        console.log(`Trusting the keys pinned in ${file}.`);
        load(file, "The trusted-keys file");
      }
    }
  }
  if (!keys.length) throw new UsageError(`No pinned public key. ${HOW_TO_PIN}`);
  return keys;
}

function print(report: LogReport, rows: RowsReport | null): boolean {
  const ok = report.ok && (rows?.ok ?? true);
  if (report.ok) {
    const cp = report.latestCheckpoint;
    console.log(
      `Provenance log verified: ${report.checked} records, root ${report.root}; ${report.checkpointsVerified} ` +
        `checkpoint(s) verified with pinned keys` +
        (cp ? `, the latest at size ${cp.size} (${cp.origin}, key ${cp.keyFingerprint}).` : "."),
    );
  } else {
    const bad = report.firstBad;
    console.log(
      bad
        ? `Provenance log BROKEN at record ${bad.seq} (${bad.problem}): ${bad.reason}`
        : `Provenance log NOT verified (${report.checked} records read, root ${report.root}):`,
    );
    for (const f of report.findings) if (f !== bad) console.log(`  ${f.problem}: ${f.reason}`);
    console.log(`${report.checked} records verified before the first problem.`);
  }
  if (rows) {
    if (rows.ok) console.log(`Rows bound to the log verified: ${rows.checked} rows.`);
    else {
      console.log(`Rows bound to the log CHANGED (${rows.findings.length} finding(s); ${rows.checked} rows checked):`);
      for (const f of rows.findings) console.log(`  ${f.table} ${f.id ?? "(missing)"}: ${f.reason}`);
    }
  }
  return ok;
}

async function main(): Promise<number> {
  let values: {
    file?: string;
    "public-key"?: string[];
    "trusted-keys"?: string;
    checkpoint?: string[];
    rows?: boolean;
  };
  try {
    ({ values } = parseArgs({
      options: {
        file: { type: "string" },
        "public-key": { type: "string", multiple: true },
        "trusted-keys": { type: "string" },
        checkpoint: { type: "string", multiple: true },
        rows: { type: "boolean" },
      },
      strict: true,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.file && values.rows)
    throw new UsageError("--rows reads the database's rows; it cannot be used with --file.");
  const pinned = pinnedKeys(values["public-key"] ?? [], values["trusted-keys"], () => loadConfig().dataDir);
  const external: ExternalCheckpoint[] = [];
  for (const f of values.checkpoint ?? []) {
    const notes = splitNotes(readText(f, "The checkpoint file"));
    if (!notes.length) throw new UsageError(`The checkpoint file ${f} holds no checkpoint.`);
    for (const [i, note] of notes.entries()) external.push({ note, source: notes.length > 1 ? `${f} (#${i + 1})` : f });
  }

  if (values.file) {
    const file = values.file;
    readText(file, "The export");
    const lines = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
    return print(await verifyLog(parseExportLines(lines), { pinned, external }), null) ? 0 : 1;
  }

  const base = loadConfig();
  const db = await openDatabase({ url: base.DATABASE_URL, schema: base.DATABASE_SCHEMA, dataDir: base.dataDir });
  try {
    await migrate(db);
    const records: AsyncIterable<LogRecord> = databaseRecords(db);
    const report = await verifyLog(records, { pinned, external });
    const rows = values.rows ? await verifyRows(db) : null;
    return print(report, rows) ? 0 : 1;
  } finally {
    await db.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) console.error(`provenance:verify: ${err.message}`);
    else console.error(`provenance:verify failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 2;
  },
);
