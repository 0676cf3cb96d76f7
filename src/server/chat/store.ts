import type { ChatMessageDto, ChatMessageStatus, ChatRole, ChatSessionDto, TaskLink } from "../../shared/chat.js";
import type { Database, SqlRunner } from "../db/database.js";
import type { ChatMessage, ChatSession } from "../db/generated/client.js";
import type { TailSource } from "../lib/tail-hub.js";

/** Every change to chat_messages takes this lock, so versions commit in the order they were drawn. */
const CHAT_LOG_LOCK_KEY = 72_707_380;

export function toSessionDto(s: ChatSession): ChatSessionDto {
  return {
    id: s.id,
    title: s.title,
    createdBy: s.createdBy,
    createdAt: s.createdAt,
    updatedAt: s.updatedAt,
    endedAt: s.endedAt,
    endedBy: s.endedBy,
  };
}

export function toMessageDto(m: ChatMessage): ChatMessageDto {
  return {
    id: m.id,
    sessionId: m.sessionId,
    seq: m.seq.toString(),
    version: m.version.toString(),
    role: m.role as ChatRole,
    author: m.author,
    authorName: m.authorName,
    content: m.content,
    clientId: m.clientId,
    status: m.status as ChatMessageStatus,
    links: (Array.isArray(m.links) ? m.links : []) as unknown as TaskLink[],
    createdAt: m.createdAt,
    updatedAt: m.updatedAt,
  };
}

export interface NewMessage {
  id: string;
  sessionId: string;
  role: ChatRole;
  author: string;
  authorName: string;
  content: string;
  clientId?: string | null;
  status?: ChatMessageStatus;
  links?: TaskLink[];
}

/**
 * The columns of a message as its DTO. The hot paths (send, the tail every process runs) use plain
 * SQL: the ORM's per-query work would run on the event loop the fan-out needs.
 */
const MESSAGE_COLUMNS = `id, session_id AS "sessionId", seq::text AS seq, version::text AS version, role, author,
  author_name AS "authorName", content, client_id AS "clientId", status, links,
  created_at AS "createdAt", updated_at AS "updatedAt"`;

const SESSION_COLUMNS = `id, title, created_by AS "createdBy", created_at AS "createdAt", updated_at AS "updatedAt",
  ended_at AS "endedAt", ended_by AS "endedBy"`;

/** Plain SQL, for the same reason as MESSAGE_COLUMNS. */
export async function findSession(db: Database, id: string): Promise<ChatSessionDto | null> {
  const [row] = await db.query<ChatSessionDto>(`SELECT ${SESSION_COLUMNS} FROM chat_sessions WHERE id = $1::uuid`, [
    id,
  ]);
  return row ?? null;
}

/** The message an author sent to a session under `clientId`, if any. */
export async function findSent(
  db: Database,
  key: { sessionId: string; author: string; clientId: string },
): Promise<ChatMessageDto | null> {
  const [row] = await db.query<ChatMessageDto>(
    `SELECT ${MESSAGE_COLUMNS} FROM chat_messages WHERE session_id = $1::uuid AND author = $2 AND client_id = $3`,
    [key.sessionId, key.author, key.clientId],
  );
  return row ?? null;
}

/** Inserts a message (drawing its version under the chat lock) and touches its session. */
export function insertMessage(db: Database, m: NewMessage): Promise<ChatMessageDto> {
  return db.transaction(async (tx) => {
    await tx.exec(`SELECT pg_advisory_xact_lock(${CHAT_LOG_LOCK_KEY}::bigint)`);
    return insertLocked(tx, m);
  });
}

export interface RateLimited {
  limited: true;
  /** Seconds until the oldest message of the last minute leaves the window. */
  retryAfterSec: number;
}

/**
 * Inserts an operator's message unless its author sent `perMinute` messages in the last minute.
 * The count is taken under the chat lock, which every process's chat writes take: the limit holds
 * across processes, and two sends racing cannot both take the last slot.
 */
export function insertOperatorMessage(
  db: Database,
  m: NewMessage,
  perMinute: number,
): Promise<ChatMessageDto | RateLimited> {
  return db.transaction(async (tx) => {
    await tx.exec(`SELECT pg_advisory_xact_lock(${CHAT_LOG_LOCK_KEY}::bigint)`);
    const [recent] = await tx.query<{ n: number; oldest: Date | null }>(
      `SELECT count(*)::int AS n, min(created_at) AS oldest FROM chat_messages
        WHERE author = $1 AND role = 'operator' AND created_at > now() - interval '1 minute'`,
      [m.author],
    );
    if (recent && recent.n >= perMinute) {
      const oldest = recent.oldest?.getTime() ?? Date.now();
      return { limited: true, retryAfterSec: Math.max(1, Math.ceil((oldest + 60_000 - Date.now()) / 1000)) };
    }
    return insertLocked(tx, m);
  });
}

async function insertLocked(tx: SqlRunner, m: NewMessage): Promise<ChatMessageDto> {
  const [row] = await tx.query<ChatMessageDto>(
    `WITH touched AS (UPDATE chat_sessions SET updated_at = now() WHERE id = $2::uuid)
     INSERT INTO chat_messages (id, session_id, role, author, author_name, content, client_id, status, links)
     VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7, $8, $9::jsonb)
     RETURNING ${MESSAGE_COLUMNS}`,
    [
      m.id,
      m.sessionId,
      m.role,
      m.author,
      m.authorName,
      m.content,
      m.clientId ?? null,
      m.status ?? "complete",
      JSON.stringify(m.links ?? []),
    ],
  );
  return row as ChatMessageDto;
}

/** Rewrites a message (an answer streaming in) with a new version, so subscribers see the change. */
export async function updateMessage(
  db: Database,
  id: string,
  patch: { content: string; status: ChatMessageStatus; links?: TaskLink[] },
): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.exec(`SELECT pg_advisory_xact_lock(${CHAT_LOG_LOCK_KEY}::bigint)`);
    await tx.query(
      `UPDATE chat_messages SET content = $2, status = $3, links = COALESCE($4::jsonb, links),
              version = nextval(pg_get_serial_sequence('chat_messages', 'version')), updated_at = now()
        WHERE id = $1::uuid`,
      [id, patch.content, patch.status, patch.links ? JSON.stringify(patch.links) : null],
    );
  });
}

/** chat_messages tailed by version, per session. */
export function messageSource(db: Database): TailSource<ChatMessageDto, { sessionId: string }> {
  return {
    async max() {
      const [row] = await db.query<{ max: string | null }>(`SELECT max(version)::text AS max FROM chat_messages`);
      return BigInt(row?.max ?? 0);
    },
    readAfter: (after, limit, filter) =>
      db.query<ChatMessageDto>(
        `SELECT ${MESSAGE_COLUMNS} FROM chat_messages
          WHERE version > $1::bigint ${filter ? "AND session_id = $3::uuid" : ""}
          ORDER BY version LIMIT $2::int`,
        filter ? [after.toString(), limit, filter.sessionId] : [after.toString(), limit],
      ),
    positionOf: (m) => BigInt(m.version),
    matches: (m, f) => m.sessionId === f.sessionId,
  };
}
