import type { ChatMessageDto, ChatMessageStatus, ChatRole, ChatSessionDto, TaskLink } from "../../shared/chat.js";
import type { Database } from "../db/database.js";
import type { ChatMessage, ChatSession, Prisma } from "../db/generated/client.js";
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

/** Inserts a message (drawing its version under the chat lock) and touches its session. */
export async function insertMessage(db: Database, m: NewMessage): Promise<ChatMessage> {
  return db.prisma.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(${CHAT_LOG_LOCK_KEY}::bigint)`;
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
export async function insertOperatorMessage(
  db: Database,
  m: NewMessage,
  perMinute: number,
): Promise<ChatMessage | RateLimited> {
  return db.prisma.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(${CHAT_LOG_LOCK_KEY}::bigint)`;
    const [recent] = await tx.$queryRaw<{ n: number; oldest: Date | null }[]>`
      SELECT count(*)::int AS n, min(created_at) AS oldest FROM chat_messages
       WHERE author = ${m.author} AND role = 'operator' AND created_at > now() - interval '1 minute'`;
    if (recent && recent.n >= perMinute) {
      const oldest = recent.oldest?.getTime() ?? Date.now();
      return { limited: true, retryAfterSec: Math.max(1, Math.ceil((oldest + 60_000 - Date.now()) / 1000)) };
    }
    return insertLocked(tx, m);
  });
}

async function insertLocked(tx: Prisma.TransactionClient, m: NewMessage): Promise<ChatMessage> {
  const row = await tx.chatMessage.create({
    data: {
      id: m.id,
      sessionId: m.sessionId,
      role: m.role,
      author: m.author,
      authorName: m.authorName,
      content: m.content,
      clientId: m.clientId ?? null,
      status: m.status ?? "complete",
      links: (m.links ?? []) as unknown as Prisma.InputJsonValue,
    },
  });
  await tx.chatSession.update({ where: { id: m.sessionId }, data: { updatedAt: new Date() } });
  return row;
}

/** Rewrites a message (an answer streaming in) with a new version, so subscribers see the change. */
export async function updateMessage(
  db: Database,
  id: string,
  patch: { content: string; status: ChatMessageStatus; links?: TaskLink[] },
): Promise<void> {
  await db.prisma.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(${CHAT_LOG_LOCK_KEY}::bigint)`;
    await tx.$executeRawUnsafe(
      `UPDATE chat_messages SET content = $2, status = $3, links = COALESCE($4::jsonb, links),
              version = nextval(pg_get_serial_sequence('chat_messages', 'version')), updated_at = now()
        WHERE id = $1::uuid`,
      id,
      patch.content,
      patch.status,
      patch.links ? JSON.stringify(patch.links) : null,
    );
  });
}

/** chat_messages tailed by version, per session. */
export function messageSource(db: Database): TailSource<ChatMessageDto, { sessionId: string }> {
  return {
    async max() {
      const r = await db.prisma.chatMessage.aggregate({ _max: { version: true } });
      return r._max.version ?? 0n;
    },
    async readAfter(after, limit, filter) {
      const rows = await db.prisma.chatMessage.findMany({
        where: { version: { gt: after }, ...(filter ? { sessionId: filter.sessionId } : {}) },
        orderBy: { version: "asc" },
        take: limit,
      });
      return rows.map(toMessageDto);
    },
    positionOf: (m) => BigInt(m.version),
    matches: (m, f) => m.sessionId === f.sessionId,
  };
}
