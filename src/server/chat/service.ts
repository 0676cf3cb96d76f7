import { randomUUID } from "node:crypto";
import { TRPCError } from "@trpc/server";
import {
  type ChatMessageDto,
  type ChatSessionDto,
  createSessionInputSchema,
  messagesInputSchema,
  renameSessionInputSchema,
  type SendInput,
  sendInputSchema,
  type TypingEvent,
} from "../../shared/chat.js";
import type { Actor } from "../../shared/roles.js";
import type { LiveBus, TypingNotice } from "../cluster/live-bus.js";
import type { Database } from "../db/database.js";
import { DomainError, notFound } from "../errors.js";
import { BoundedQueue } from "../lib/async-queue.js";
import { TailHub } from "../lib/tail-hub.js";
import type { Logger } from "../logger.js";
import { type Assistant, noChatWorkerText } from "./assistant.js";
import { parseMessage } from "./commands.js";
import {
  findSent,
  findSession,
  insertMessage,
  insertOperatorMessage,
  messageSource,
  toMessageDto,
  toSessionDto,
  updateMessage,
} from "./store.js";

export interface ChatSettings {
  messagesPerMinute: number;
  /** Safety poll for other processes' messages while anyone listens, should a notification be lost; 0: never. */
  pollMs: number;
  /** Take other processes' messages from the bus (a Postgres server, where several processes may run). */
  followBus: boolean;
  /** How often a streaming answer is written while it arrives. */
  streamFlushMs?: number;
}

const ASSISTANT = { id: "assistant", name: "Agency" } as const;
const SYSTEM = { id: "system", name: "System" } as const;
const TYPING_BUFFER = 100;
/** Recent messages a chat worker is given as the conversation. */
const CONVERSATION = 30;

/**
 * Chat sessions between operators and the agency: persisted messages with a per-message version
 * feed (replay from `lastEventId`, then live), idempotent sends, per-user rate limits, typing
 * indicators, and the assistant, which answers commands and hands free text to a chat worker.
 */
export class ChatService {
  readonly hub: TailHub<ChatMessageDto, { sessionId: string }>;
  private readonly lastTyping = new Map<string, number>();
  private readonly replies = new Set<Promise<void>>();
  private readonly ctrl = new AbortController();

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    private readonly assistant: Assistant,
    /** Carries typing notices between processes (and other processes' new messages). */
    private readonly bus: LiveBus,
    private readonly settings: ChatSettings,
  ) {
    this.hub = new TailHub(messageSource(db), log, "chat hub", settings.pollMs);
    if (settings.followBus) this.hub.follow(bus, "chat");
  }

  /** Stops answering: aborts chat worker calls in flight and waits for their messages to be written. */
  async stop(): Promise<void> {
    this.ctrl.abort();
    await Promise.allSettled([...this.replies]);
    this.hub.stop();
  }

  async listSessions(opts: { includeEnded?: boolean } = {}): Promise<ChatSessionDto[]> {
    const rows = await this.db.prisma.chatSession.findMany({
      where: opts.includeEnded ? {} : { endedAt: null },
      orderBy: { updatedAt: "desc" },
      take: 200,
    });
    return rows.map(toSessionDto);
  }

  async getSession(id: string): Promise<ChatSessionDto> {
    const s = await findSession(this.db, id);
    if (!s) throw notFound("Chat session", id);
    return s;
  }

  async createSession(actor: Actor, raw: { title?: string }): Promise<ChatSessionDto> {
    const input = createSessionInputSchema.parse(raw);
    const now = new Date();
    const session = await this.db.prisma.chatSession.create({
      data: {
        id: randomUUID(),
        title: input.title ?? `Session of ${now.toISOString().slice(0, 16).replace("T", " ")} UTC`,
        createdBy: actor.id,
      },
    });
    await this.system(session.id, `${actor.name} started the session. Type /help for what I can do.`);
    return toSessionDto(session);
  }

  async renameSession(actor: Actor, raw: { sessionId: string; title: string }): Promise<ChatSessionDto> {
    const input = renameSessionInputSchema.parse(raw);
    const before = await this.getSession(input.sessionId);
    if (before.title === input.title) return before;
    const s = await this.db.prisma.chatSession.update({
      where: { id: input.sessionId },
      data: { title: input.title, updatedAt: new Date() },
    });
    await this.system(s.id, `${actor.name} renamed the session to "${input.title}".`);
    return toSessionDto(s);
  }

  /** Ends a session: it stays readable, and nothing more can be sent to it. Ending twice changes nothing. */
  async endSession(actor: Actor, sessionId: string): Promise<ChatSessionDto> {
    const { count } = await this.db.prisma.chatSession.updateMany({
      where: { id: sessionId, endedAt: null },
      data: { endedAt: new Date(), endedBy: actor.id, updatedAt: new Date() },
    });
    if (count === 0) return this.getSession(sessionId);
    await this.system(sessionId, `${actor.name} ended the session.`);
    return this.getSession(sessionId);
  }

  /** A page of a session's messages, oldest first; `nextCursor` pages further back. */
  async messages(raw: { sessionId: string; cursor?: string | null; limit?: number }) {
    const input = messagesInputSchema.parse(raw);
    await this.getSession(input.sessionId);
    const rows = await this.db.prisma.chatMessage.findMany({
      where: { sessionId: input.sessionId, ...(input.cursor ? { seq: { lt: BigInt(input.cursor) } } : {}) },
      orderBy: { seq: "desc" },
      take: input.limit + 1,
    });
    const page = rows.slice(0, input.limit);
    const oldest = page.at(-1);
    return {
      items: page.reverse().map(toMessageDto),
      nextCursor: rows.length > input.limit && oldest ? oldest.seq.toString() : null,
    };
  }

  /**
   * Stores an operator's message once per `clientId` (a resend returns the stored one and runs
   * nothing again), then lets the assistant answer it in the background.
   */
  async send(actor: Actor, raw: SendInput): Promise<{ message: ChatMessageDto; duplicate: boolean }> {
    const input = sendInputSchema.parse(raw);
    const session = await this.getSession(input.sessionId);
    const existing = await this.findSent(actor, input);
    if (existing) return { message: existing, duplicate: true };
    if (session.endedAt) {
      throw new DomainError(
        "PRECONDITION_FAILED",
        `Session "${session.title}" was ended${session.endedBy ? ` by ${session.endedBy}` : ""}; start a new session to go on.`,
      );
    }
    let row: Awaited<ReturnType<typeof insertOperatorMessage>>;
    try {
      row = await insertOperatorMessage(
        this.db,
        {
          id: randomUUID(),
          sessionId: input.sessionId,
          role: "operator",
          author: actor.id,
          authorName: actor.name,
          content: input.content,
          clientId: input.clientId,
        },
        this.settings.messagesPerMinute,
      );
    } catch (err) {
      // Two sends with one clientId raced: the other stored it.
      const raced = await this.findSent(actor, input);
      if (raced) return { message: raced, duplicate: true };
      throw err;
    }
    if ("limited" in row) {
      throw new TRPCError({
        code: "TOO_MANY_REQUESTS",
        message: `You sent ${this.settings.messagesPerMinute} messages in the last minute, the limit; try again in ${row.retryAfterSec} s.`,
      });
    }
    this.hub.notify();
    this.track(this.answer(actor, session, row));
    return { message: row, duplicate: false };
  }

  private findSent(actor: Actor, input: SendInput): Promise<ChatMessageDto | null> {
    return findSent(this.db, { sessionId: input.sessionId, author: actor.id, clientId: input.clientId });
  }

  private track(p: Promise<void>): void {
    const tracked = p.catch((err: unknown) => this.log.error({ err }, "chat: answering a message failed"));
    this.replies.add(tracked);
    void tracked.finally(() => this.replies.delete(tracked));
  }

  /** Waits for the answers being written (tests). */
  async idle(): Promise<void> {
    while (this.replies.size) await Promise.allSettled([...this.replies]);
    await this.hub.flush();
  }

  private async answer(actor: Actor, session: ChatSessionDto, message: ChatMessageDto): Promise<void> {
    const parsed = parseMessage(message.content);
    if (parsed.kind === "invalid") return this.reply(session.id, `${parsed.error} Type /help for the commands.`);
    if (parsed.kind === "command") {
      const r = await this.assistant.run(actor, parsed.command);
      return this.reply(session.id, r.content, r.links);
    }
    const worker = await this.assistant.chatWorker();
    if (!worker) return this.reply(session.id, noChatWorkerText());
    const replyId = randomUUID();
    await insertMessage(this.db, {
      id: replyId,
      sessionId: session.id,
      role: "assistant",
      author: ASSISTANT.id,
      authorName: `${ASSISTANT.name} (${worker.name})`,
      content: "",
      status: "streaming",
    });
    this.hub.notify();
    const history = await this.db.prisma.chatMessage.findMany({
      where: { sessionId: session.id, seq: { lte: BigInt(message.seq) } },
      orderBy: { seq: "desc" },
      take: CONVERSATION,
    });
    // Stream: write the text so far at most every streamFlushMs, never two writes at once.
    let latest = "";
    let written = "";
    let writing: Promise<void> | null = null;
    let timer: NodeJS.Timeout | null = null;
    const write = async () => {
      timer = null;
      if (writing || latest === written) return;
      const text = latest;
      writing = updateMessage(this.db, replyId, { content: text, status: "streaming" })
        .then(() => {
          written = text;
          this.hub.notify();
        })
        .finally(() => {
          writing = null;
        });
      await writing;
      if (latest !== written && !timer) timer = setTimeout(() => void write(), this.settings.streamFlushMs ?? 100);
    };
    const result = await this.assistant.converse(
      worker,
      {
        replyId,
        sessionTitle: session.title,
        messages: history.reverse().map((m) => ({ role: m.role, author: m.authorName, content: m.content })),
      },
      (text) => {
        latest = text;
        if (!timer && !writing) timer = setTimeout(() => void write(), this.settings.streamFlushMs ?? 100);
      },
      this.ctrl.signal,
    );
    if (timer) clearTimeout(timer);
    while (writing) await writing;
    await updateMessage(this.db, replyId, {
      content: result.text.slice(0, 100_000),
      status: result.ok ? "complete" : "failed",
    });
    this.hub.notify();
  }

  private async reply(sessionId: string, content: string, links: ChatMessageDto["links"] = []): Promise<void> {
    await insertMessage(this.db, {
      id: randomUUID(),
      sessionId,
      role: "assistant",
      author: ASSISTANT.id,
      authorName: ASSISTANT.name,
      content,
      links,
    });
    this.hub.notify();
  }

  private async system(sessionId: string, content: string): Promise<void> {
    await insertMessage(this.db, {
      id: randomUUID(),
      sessionId,
      role: "system",
      author: SYSTEM.id,
      authorName: SYSTEM.name,
      content,
    });
    this.hub.notify();
  }

  /** Messages of a session after `lastEventId` (a version), then live; each change of a message comes again. */
  async *onMessage(opts: { sessionId: string; lastEventId?: string | null; signal?: AbortSignal }) {
    await this.getSession(opts.sessionId);
    yield* this.hub.subscribe({
      filter: { sessionId: opts.sessionId },
      lastEventId: opts.lastEventId,
      signal: opts.signal,
    });
  }

  /**
   * Tells the session's other subscribers, on every process, that `actor` is typing (at most twice
   * a second per user and process). Typing is ephemeral: a NOTIFY carries it whole, nothing is stored.
   */
  async typing(actor: Actor, sessionId: string): Promise<void> {
    const session = await this.getSession(sessionId);
    if (session.endedAt) throw new DomainError("PRECONDITION_FAILED", "The session has ended.");
    const key = `${sessionId}:${actor.id}`;
    const now = Date.now();
    if (now - (this.lastTyping.get(key) ?? 0) < 500) return;
    this.lastTyping.set(key, now);
    if (this.lastTyping.size > 10_000) {
      for (const [k, at] of this.lastTyping) if (now - at >= 500) this.lastTyping.delete(k);
    }
    await this.bus.publishTyping({ sessionId, userId: actor.id, name: actor.name.slice(0, 200), at: now });
  }

  /** Typing in a session by others than `self`; a slow reader loses old typing events, never memory. */
  async *onTyping(opts: { sessionId: string; self: string; signal?: AbortSignal }): AsyncGenerator<TypingEvent> {
    await this.getSession(opts.sessionId);
    const queue = new BoundedQueue<TypingNotice>(TYPING_BUFFER);
    const off = this.bus.onTyping((t) => {
      if (t.sessionId === opts.sessionId && t.userId !== opts.self) queue.push(t);
    });
    try {
      while (!opts.signal?.aborted) {
        const batch = await queue.drain(opts.signal);
        queue.overflowed = false;
        for (const t of batch) yield { sessionId: t.sessionId, userId: t.userId, name: t.name, at: new Date(t.at) };
      }
    } finally {
      off();
    }
  }
}
