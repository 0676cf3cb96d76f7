// Verifies the provenance chain.
//   npm run provenance:verify                                   the database's chain (DATABASE_URL or DATA_DIR, like the server)
//   npm run provenance:verify -- --public-key key.pem           the same, trusting only the given public key
//   npm run provenance:verify -- --file chain.jsonl --public-key key.pem
//                                                              an exported chain, with nothing but the public key
// Exits 0 when the chain verifies, 1 when a record is bad (printed with its seq and reason), 2 on a usage error.
import { createReadStream, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { loadConfig } from "../src/server/config.js";
import { openDatabase } from "../src/server/db/database.js";
import { migrate } from "../src/server/db/migrate.js";
import { loadTrustConfig } from "../src/server/keystore/config.js";
import { openKeystore } from "../src/server/keystore/index.js";
import { loadSigningKey, publicKeyId, SecretBox, SecretStore } from "../src/server/keystore/secrets.js";
import { type ChainReport, parseExportLines, verifyChain } from "../src/server/provenance/chain.js";
import { ProvenanceService, readPublicKey } from "../src/server/provenance/service.js";

function print(report: ChainReport): void {
  if (report.ok) {
    console.log(
      `Provenance chain verified: ${report.checked} records` +
        (report.headSeq ? `, head ${report.headSeq} (${report.headHash})` : " (empty chain)"),
    );
  } else {
    const bad = report.firstBad;
    console.log(`Provenance chain BROKEN at record ${bad?.seq} (${bad?.problem}): ${bad?.reason}`);
    console.log(`${report.checked} records before it verified.`);
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { file: { type: "string" }, "public-key": { type: "string" } },
    strict: true,
  });
  const publicKey = values["public-key"] ? readPublicKey(readFileSync(values["public-key"], "utf8")) : undefined;

  if (values.file) {
    if (!publicKey) {
      console.error("--file needs --public-key (the PEM from GET /provenance/public-key).");
      return 2;
    }
    const lines = createInterface({ input: createReadStream(values.file), crlfDelay: Number.POSITIVE_INFINITY });
    const report = await verifyChain(parseExportLines(lines), new Map([[publicKeyId(publicKey), publicKey]]));
    print(report);
    return report.ok ? 0 : 1;
  }

  const base = loadConfig();
  const db = await openDatabase({ url: base.DATABASE_URL, schema: base.DATABASE_SCHEMA, dataDir: base.dataDir });
  try {
    await migrate(db);
    let report: ChainReport;
    if (publicKey) {
      async function* rows() {
        let after = 0n;
        for (;;) {
          const page = await db.prisma.provenanceRecord.findMany({
            where: { seq: { gt: after } },
            orderBy: { seq: "asc" },
            take: 500,
          });
          yield* page;
          if (page.length < 500) return;
          after = page[page.length - 1]?.seq ?? after;
        }
      }
      report = await verifyChain(rows(), new Map([[publicKeyId(publicKey), publicKey]]));
    } else {
      const keystore = await openKeystore(loadTrustConfig(process.env, base.dataDir));
      const signing = await loadSigningKey(new SecretStore(db.prisma, await SecretBox.fromKeystore(keystore)));
      report = await new ProvenanceService(db, signing).verify();
    }
    print(report);
    return report.ok ? 0 : 1;
  } finally {
    await db.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`provenance:verify failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 2;
  },
);
