import { mkdirSync } from "node:fs";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { pg_trgm } from "@electric-sql/pglite/contrib/pg_trgm";
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaPGlite } from "pglite-prisma-adapter";
import { defineConfig } from "prisma/config";

// Used by the Prisma CLI (`generate`, `migrate diff`, `migrate status`). The server applies
// migrations itself at start (src/server/db/migrate.ts) into the same `_prisma_migrations` table.
// With the "js" engine nothing is downloaded: the CLI talks to the database through the adapter.
export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: path.join("prisma", "schema.prisma"),
  migrations: { path: path.join("prisma", "migrations") },
  async adapter() {
    const url = process.env.DATABASE_URL;
    if (url) return new PrismaPg({ connectionString: url });
    const dir = path.join(process.env.DATA_DIR ?? "./data", "pglite");
    mkdirSync(dir, { recursive: true });
    return new PrismaPGlite(new PGlite(dir, { extensions: { pg_trgm } }));
  },
});
