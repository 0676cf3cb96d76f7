import { z } from "zod";
import { safeText } from "./text.js";

export const CHAT_LIMITS = {
  title: 120,
  /** Characters in one operator message. */
  message: 4_000,
  clientId: 64,
  /** Messages per page of `chat.messages`. */
  page: 50,
} as const;

export const CHAT_ROLES = ["operator", "assistant", "system"] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

/** "streaming": an assistant answer still arriving from a chat worker. */
export const CHAT_MESSAGE_STATUSES = ["complete", "streaming", "failed"] as const;
export type ChatMessageStatus = (typeof CHAT_MESSAGE_STATUSES)[number];

/** A task a message refers to; the console renders it as a chip linking to the task. */
export interface TaskLink {
  taskId: string;
  title: string;
}

export interface ChatSessionDto {
  id: string;
  title: string;
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
  endedAt: Date | null;
  endedBy: string | null;
}

export interface ChatMessageDto {
  id: string;
  sessionId: string;
  /** Position in the session (string: a bigint). */
  seq: string;
  /** Changes with every edit (an answer streaming in); what `chat.onMessage` tracks. */
  version: string;
  role: ChatRole;
  author: string;
  authorName: string;
  content: string;
  clientId: string | null;
  status: ChatMessageStatus;
  links: TaskLink[];
  createdAt: Date;
  updatedAt: Date;
}

export interface TypingEvent {
  sessionId: string;
  userId: string;
  name: string;
  at: Date;
}

export const sessionIdSchema = z.uuid({ error: "Session id must be a UUID" });
const title = safeText(
  z
    .string()
    .trim()
    .min(1, "Give the session a title")
    .max(CHAT_LIMITS.title, `Title must be at most ${CHAT_LIMITS.title} characters`),
);

export const createSessionInputSchema = z.object({ title: title.optional() });
export const renameSessionInputSchema = z.object({ sessionId: sessionIdSchema, title });

export const sendInputSchema = z.object({
  sessionId: sessionIdSchema,
  content: safeText(
    z
      .string()
      .trim()
      .min(1, "Write a message first")
      .max(CHAT_LIMITS.message, `A message may be at most ${CHAT_LIMITS.message} characters`),
  ),
  /** Chosen by the client for each message it sends: a resend with the same id is not stored twice. */
  clientId: z
    .string()
    .min(8, "clientId must be 8 to 64 characters")
    .max(CHAT_LIMITS.clientId, "clientId must be 8 to 64 characters")
    .regex(/^[A-Za-z0-9_-]+$/, "clientId may contain only letters, digits, '_' and '-'"),
});
export type SendInput = z.infer<typeof sendInputSchema>;

export const chatEventIdSchema = z.string().regex(/^\d{1,19}$/, "lastEventId must be a message version number");

export const messagesInputSchema = z.object({
  sessionId: sessionIdSchema,
  /** `nextCursor` of the previous page: older messages than those already loaded. */
  cursor: z
    .string()
    .regex(/^\d{1,19}$/, "cursor must come from a previous page")
    .nullish(),
  limit: z.number().int().min(1).max(200).default(CHAT_LIMITS.page),
});
