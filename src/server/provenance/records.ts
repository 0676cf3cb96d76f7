import type { Database } from "../db/database.js";
import type { LogRecord } from "./log.js";

const PAGE = 500;

/** The database's records in order, a page at a time (keyset on seq), as the verifier reads them. */
export async function* databaseRecords(db: Database): AsyncGenerator<LogRecord> {
  let after = 0n;
  for (;;) {
    const page = await db.prisma.provenanceRecord.findMany({
      where: { seq: { gt: after } },
      orderBy: { seq: "asc" },
      take: PAGE,
      select: {
        seq: true,
        kind: true,
        taskId: true,
        payload: true,
        payloadDigest: true,
        leafHash: true,
        createdAt: true,
        checkpoint: true,
      },
    });
    for (const r of page) yield { ...r, payload: r.payload as unknown };
    if (page.length < PAGE) return;
    after = (page[page.length - 1] as LogRecord).seq;
  }
}
