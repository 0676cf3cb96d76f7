import { spawn } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";

// `npm run generate` (and so `npm run build` and `npm start`): `prisma generate` without its line
// "Prisma config detected, skipping environment variable loading." The Prisma CLI prints it whenever a
// prisma.config.ts exists, and it reads as if the environment were ignored. It is not: it means only that
// the CLI loads no .env file itself. prisma.config.ts still reads DATABASE_URL and DATA_DIR from the
// environment, and the server reads nothing but its environment either (see .env.example). Every other
// line, and the exit code, pass through.
const CONFIG_NOTICE = "Prisma config detected, skipping environment variable loading.";

const cli = path.join(process.cwd(), "node_modules", "prisma", "build", "index.js");
const child = spawn(process.execPath, [cli, "generate", "--no-hints", ...process.argv.slice(2)], {
  stdio: ["inherit", "inherit", "pipe"],
});
createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", (line) => {
  if (line.trim() !== CONFIG_NOTICE) process.stderr.write(`${line}\n`);
});
child.on("error", (err) => {
  console.error(`prisma generate could not start: ${err.message}`);
  process.exit(1);
});
child.on("close", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
