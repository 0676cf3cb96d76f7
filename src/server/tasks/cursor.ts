import { DomainError } from "../errors.js";

/** The keyset of the last row of a page: `[seq]`, `[priorityRank, seq]` or `[updatedAt ms, seq]`. Opaque to clients. */
export type CursorKey = { seq: bigint; rank?: number };

export function encodeCursor(key: CursorKey): string {
  const parts = key.rank === undefined ? [key.seq.toString()] : [String(key.rank), key.seq.toString()];
  return Buffer.from(parts.join(":"), "utf8").toString("base64url");
}

export function decodeCursor(cursor: string, withRank: boolean): CursorKey {
  const text = Buffer.from(cursor, "base64url").toString("utf8");
  const parts = text.split(":");
  const valid = parts.length === (withRank ? 2 : 1) && parts.every((p) => /^\d{1,19}$/.test(p));
  if (!valid) throw new DomainError("BAD_REQUEST", "The page cursor is invalid; reload the list from its first page.");
  return withRank ? { rank: Number(parts[0]), seq: BigInt(parts[1] as string) } : { seq: BigInt(parts[0] as string) };
}
