import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadTrustConfig, type TrustConfig } from "../src/server/keystore/config.js";
import { openKeystore, registerKeystoreProvider } from "../src/server/keystore/index.js";
import { deriveKey } from "../src/server/keystore/provider.js";
import { resealAll, rotateKeys } from "../src/server/keystore/rotate.js";
import { loadSigningKey, masterKeyId, SecretBox, SecretStore } from "../src/server/keystore/secrets.js";
import { DATABASES, freshDatabase, type TestDatabase } from "./helpers/databases.js";

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), "agency-keystore-"));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const cfg = (env: Record<string, string>, dataDir = tempDir()): TrustConfig => loadTrustConfig(env, dataDir);
const key32 = () => randomBytes(32).toString("base64");

describe("keystore providers", () => {
  it("file provider creates the key file with mode 0600 and reuses it", async () => {
    const dir = tempDir();
    const a = await openKeystore(cfg({ KEYSTORE: "file" }, dir));
    const file = path.join(dir, "master.key");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const b = await openKeystore(cfg({ KEYSTORE: "file" }, dir));
    expect((await a.getMasterKey()).equals(await b.getMasterKey())).toBe(true);
    expect(await a.getMasterKey()).toHaveLength(32);
  });

  it("file provider refuses a key file readable by group or others", async () => {
    const dir = tempDir();
    await openKeystore(cfg({ KEYSTORE: "file" }, dir));
    const file = path.join(dir, "master.key");
    for (const mode of [0o640, 0o604]) {
      chmodSync(file, mode);
      await expect(openKeystore(cfg({ KEYSTORE: "file" }, dir))).rejects.toThrow(
        /readable by group or others.*chmod 600/,
      );
    }
    chmodSync(file, 0o600);
    await expect(openKeystore(cfg({ KEYSTORE: "file" }, dir))).resolves.toBeDefined();
  });

  it("file provider refuses a corrupt key file", async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, "master.key"), "not json", { mode: 0o600 });
    await expect(openKeystore(cfg({ KEYSTORE: "file" }, dir))).rejects.toThrow(/not a valid Agent Agency key file/);
  });

  it("env provider takes a base64 32-byte key and refuses anything else without echoing it", async () => {
    const k = key32();
    const ks = await openKeystore(cfg({ KEYSTORE: "env", AGENCY_MASTER_KEY: k }));
    expect((await ks.getMasterKey()).toString("base64")).toBe(k);
    await expect(openKeystore(cfg({ KEYSTORE: "env" }))).rejects.toThrow(/needs AGENCY_MASTER_KEY/);
    const short = randomBytes(16).toString("base64");
    const err = await openKeystore(cfg({ KEYSTORE: "env", AGENCY_MASTER_KEY: short })).catch((e: Error) => e);
    expect(String(err)).toMatch(/exactly 32 bytes \(it decodes to 16\)/);
    expect(String(err)).not.toContain(short);
    await expect(openKeystore(cfg({ KEYSTORE: "env", AGENCY_MASTER_KEY: "%%%" }))).rejects.toThrow(/not base64/);
  });

  it("names secrets per purpose and refuses an unknown provider; a third provider registers without callers changing", async () => {
    const ks = await openKeystore(cfg({ KEYSTORE: "env", AGENCY_MASTER_KEY: key32() }));
    const a = await ks.getSecret("a");
    expect(a).toHaveLength(32);
    expect(a.equals(await ks.getSecret("b"))).toBe(false);
    expect(a.equals(await ks.getSecret("a"))).toBe(true);
    await expect(openKeystore(cfg({ KEYSTORE: "vault" }))).rejects.toThrow(
      /KEYSTORE=vault is not a keystore provider; use one of: env, file/,
    );

    const fixed = randomBytes(32);
    registerKeystoreProvider("memory-test", async () => ({
      name: "memory-test",
      getMasterKey: async () => fixed,
      getSecret: async (name) => deriveKey(fixed, `secret:${name}`),
      getPreviousMasterKeys: async () => [],
    }));
    const third = await openKeystore(cfg({ KEYSTORE: "memory-test" }));
    expect((await third.getMasterKey()).equals(fixed)).toBe(true);
  });
});

describe("SecretBox", () => {
  const box = new SecretBox(randomBytes(32));

  it("round-trips, with a fresh nonce each time and the key id in the envelope", () => {
    const a = box.seal("worker-token-123", "workers.token");
    const b = box.seal("worker-token-123", "workers.token");
    expect(a).not.toBe(b);
    expect(a).not.toContain("worker-token-123");
    expect(box.keyIdOf(a)).toBe(box.currentKeyId);
    expect(box.open(a, "workers.token")).toBe("worker-token-123");
  });

  it("refuses a value moved to another context, altered, or sealed under an unknown key", () => {
    const sealed = box.seal("s3cret", "secret:x");
    expect(() => box.open(sealed, "secret:y")).toThrow(/failed its integrity check/);
    const parts = sealed.split(".");
    const ct = Buffer.from(parts[3] as string, "base64url");
    ct[0] = (ct[0] as number) ^ 1;
    parts[3] = ct.toString("base64url");
    expect(() => box.open(parts.join("."), "secret:x")).toThrow(/failed its integrity check/);
    const other = new SecretBox(randomBytes(32));
    expect(() => other.open(sealed, "secret:x")).toThrow(/does not hold/);
    expect(() => box.open("plain-text", "secret:x")).toThrow(/not in the sealed format/);
  });

  it("opens values sealed under a previous key", () => {
    const oldKey = randomBytes(32);
    const sealed = new SecretBox(oldKey).seal("v", "c");
    const rotated = new SecretBox(randomBytes(32), [oldKey]);
    expect(rotated.open(sealed, "c")).toBe("v");
    expect(rotated.keyIdOf(sealed)).toBe(masterKeyId(oldKey));
  });
});

describe.each(DATABASES)("secret store and rotation on %s", (kind) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await freshDatabase(kind);
  });
  afterAll(() => db.dispose());

  it("keys:rotate re-seals every secret under a new file key and keeps the signing key", async () => {
    const dir = tempDir();
    const ks = await openKeystore(cfg({ KEYSTORE: "file" }, dir));
    const store = new SecretStore(db.prisma, await SecretBox.fromKeystore(ks));
    await store.put("smtp-password", Buffer.from("hunter2-smtp"));
    const signing = await loadSigningKey(store);
    const before = await db.prisma.secret.findMany({ orderBy: { name: "asc" } });
    const oldId = masterKeyId(await ks.getMasterKey());
    expect(before.every((r) => r.value.includes(oldId))).toBe(true);

    const result = await rotateKeys(db, ks);
    expect(result.resealed).toBe(2);
    const newId = masterKeyId(await ks.getMasterKey());
    expect(newId).not.toBe(oldId);
    expect(result.keyId).toBe(newId);
    // the old key is gone from the file, and the new file is still 0600
    const file = JSON.parse(readFileSync(path.join(dir, "master.key"), "utf8"));
    expect(file.previous).toEqual([]);
    expect(statSync(path.join(dir, "master.key")).mode & 0o777).toBe(0o600);

    const reopened = new SecretStore(
      db.prisma,
      await SecretBox.fromKeystore(await openKeystore(cfg({ KEYSTORE: "file" }, dir))),
    );
    expect((await reopened.get("smtp-password"))?.toString()).toBe("hunter2-smtp");
    expect((await loadSigningKey(reopened)).publicKeyPem).toBe(signing.publicKeyPem);
    const after = await db.prisma.secret.findMany();
    expect(after.every((r) => r.value.includes(newId))).toBe(true);
  });

  it("with KEYSTORE=env, rotation needs the old key as previous and then re-seals under the new one", async () => {
    await db.exec(`TRUNCATE "secrets"`);
    const oldKey = key32();
    const newKey = key32();
    const ks1 = await openKeystore(cfg({ KEYSTORE: "env", AGENCY_MASTER_KEY: oldKey }));
    await new SecretStore(db.prisma, await SecretBox.fromKeystore(ks1)).put("x", Buffer.from("value-x"));
    await expect(rotateKeys(db, ks1)).rejects.toThrow(/AGENCY_MASTER_KEY_PREVIOUS/);

    const ks2 = await openKeystore(
      cfg({ KEYSTORE: "env", AGENCY_MASTER_KEY: newKey, AGENCY_MASTER_KEY_PREVIOUS: oldKey }),
    );
    expect((await rotateKeys(db, ks2)).resealed).toBe(1);
    // running it again finds nothing left to do
    expect(await resealAll(db, ks2)).toMatchObject({ resealed: 0, alreadyCurrent: 1 });
    const ks3 = await openKeystore(cfg({ KEYSTORE: "env", AGENCY_MASTER_KEY: newKey }));
    expect((await new SecretStore(db.prisma, await SecretBox.fromKeystore(ks3)).get("x"))?.toString()).toBe("value-x");
  });

  it("two processes racing to make the signing key end up with the same one", async () => {
    await db.exec(`TRUNCATE "secrets"`);
    const ks = await openKeystore(cfg({ KEYSTORE: "env", AGENCY_MASTER_KEY: key32() }));
    const box = await SecretBox.fromKeystore(ks);
    const [a, b] = await Promise.all([
      loadSigningKey(new SecretStore(db.prisma, box)),
      loadSigningKey(new SecretStore(db.prisma, box)),
    ]);
    expect(a.keyId).toBe(b.keyId);
  });
});
