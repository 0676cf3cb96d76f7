import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { TRPCError } from "@trpc/server";
import type { z } from "zod";
import type { ApiTokenDto, MeDto, UserDto, userCreateInputSchema, userUpdateInputSchema } from "../../shared/auth.js";
import type { Actor, Role } from "../../shared/roles.js";
import type { AuditService, ClientInfo } from "../audit/service.js";
import type { Database } from "../db/database.js";
import type { ApiToken, User } from "../db/generated/client.js";
import { DomainError, notFound } from "../errors.js";
import type { Logger } from "../logger.js";
import { readCookie, SESSION_COOKIE } from "./cookies.js";
import {
  API_TOKEN_PREFIX,
  burnPasswordCheck,
  generatePassword,
  hashPassword,
  newApiToken,
  newSessionToken,
  tokenDigest,
  verifyPassword,
} from "./credentials.js";

export interface AuthSettings {
  AGENCY_ADMIN_PASSWORD?: string | undefined;
  AGENCY_BOOTSTRAP_TOKEN?: string | undefined;
  SESSION_TTL_HOURS: number;
  SIGNIN_MAX_FAILURES_PER_ACCOUNT: number;
  SIGNIN_MAX_FAILURES_PER_ADDRESS: number;
  SIGNIN_WINDOW_MINUTES: number;
}

/** What identifies a caller, for HTTP requests and WebSocket connections alike. */
export interface Credentials {
  cookieHeader?: string | undefined;
  authorizationHeader?: string | undefined;
  /** tRPC WebSocket `connectionParams`; `{ token }` carries an API token. */
  connectionParams?: Record<string, unknown> | null | undefined;
}

/** The caller of an auth operation, for the audit trail. */
export interface Caller {
  actor: Actor;
  client?: ClientInfo;
}

const BOOTSTRAP_LOCK_KEY = 72_707_372;
/** A token's last-used time is written at most this often, so busy automation does not write on every call. */
const LAST_USED_RESOLUTION_MS = 60_000;

export function toUserDto(u: User): UserDto {
  return {
    id: u.id,
    username: u.username,
    displayName: u.displayName,
    role: u.role,
    disabled: u.disabled,
    mustChangePassword: u.mustChangePassword,
    createdAt: u.createdAt,
    lastSignInAt: u.lastSignInAt,
  };
}

function toTokenDto(t: ApiToken & { user: { username: string } }): ApiTokenDto {
  return {
    id: t.id,
    username: t.user.username,
    name: t.name,
    prefix: t.prefix,
    createdAt: t.createdAt,
    expiresAt: t.expiresAt,
    lastUsedAt: t.lastUsedAt,
    revokedAt: t.revokedAt,
  };
}

const userActor = (u: User): Actor => ({ kind: "user", id: u.username, name: u.displayName, role: u.role });

const badCredentials = () => new TRPCError({ code: "UNAUTHORIZED", message: "Wrong username or password." });

export class AuthService {
  /** Emits "credentials-changed" after a sign-out, a token revocation or a user change, so live sockets are re-checked. */
  readonly changes = new EventEmitter();

  constructor(
    private readonly db: Database,
    private readonly audit: AuditService,
    private readonly settings: AuthSettings,
    private readonly log: Logger,
  ) {}

  get sessionTtlSeconds(): number {
    return Math.round(this.settings.SESSION_TTL_HOURS * 3600);
  }

  // ---- bootstrap ----

  /**
   * First start: if no enabled admin exists, make one — with AGENCY_ADMIN_PASSWORD, or else a generated
   * one-time password printed once to the log (the only secret this process ever logs, on purpose: it is
   * the way in). AGENCY_BOOTSTRAP_TOKEN, if set, becomes an API token of that admin.
   */
  async bootstrap(): Promise<void> {
    const printed = await this.db.prisma.$transaction(async (tx) => {
      await tx.$executeRaw`SELECT pg_advisory_xact_lock(${BOOTSTRAP_LOCK_KEY}::bigint)`;
      let admin = await tx.user.findFirst({ where: { role: "admin", disabled: false }, orderBy: { createdAt: "asc" } });
      let oneTime: string | undefined;
      if (!admin) {
        const password = this.settings.AGENCY_ADMIN_PASSWORD ?? generatePassword();
        if (!this.settings.AGENCY_ADMIN_PASSWORD) oneTime = password;
        const taken = await tx.user.findUnique({ where: { username: "admin" } });
        const username = taken ? `admin-${randomUUID().slice(0, 8)}` : "admin";
        admin = await tx.user.create({
          data: {
            id: randomUUID(),
            username,
            displayName: "Administrator",
            role: "admin",
            passwordHash: await hashPassword(password),
            mustChangePassword: oneTime !== undefined,
          },
        });
        await this.audit.record(tx, {
          actor: { kind: "system", id: "bootstrap" },
          action: "user.create",
          resource: { type: "user", id: admin.id },
          after: { username, role: "admin", passwordFrom: oneTime ? "generated" : "AGENCY_ADMIN_PASSWORD" },
        });
      }
      if (this.settings.AGENCY_BOOTSTRAP_TOKEN) {
        const digest = tokenDigest(this.settings.AGENCY_BOOTSTRAP_TOKEN);
        // A revoked bootstrap token stays revoked: the existing row (any state) wins.
        if (!(await tx.apiToken.findUnique({ where: { tokenHash: digest } }))) {
          const token = await tx.apiToken.create({
            data: {
              id: randomUUID(),
              userId: admin.id,
              name: "bootstrap (AGENCY_BOOTSTRAP_TOKEN)",
              prefix: "env",
              tokenHash: digest,
            },
          });
          await this.audit.record(tx, {
            actor: { kind: "system", id: "bootstrap" },
            action: "token.create",
            resource: { type: "api_token", id: token.id },
            after: { username: admin.username, name: token.name },
          });
        }
      }
      return oneTime ? { username: admin.username, password: oneTime } : null;
    });
    if (printed) {
      this.log.warn(
        { username: printed.username },
        `First start: created admin "${printed.username}" with one-time password ${printed.password} — sign in and change it. ` +
          "This is the only time it is shown; set AGENCY_ADMIN_PASSWORD to choose it instead.",
      );
    }
  }

  // ---- resolving callers ----

  /** Who the caller is: a bearer API token, a token in WebSocket connectionParams, or the session cookie. */
  async resolveActor(creds: Credentials): Promise<Actor | null> {
    const bearer = /^Bearer\s+(\S+)$/i.exec(creds.authorizationHeader ?? "")?.[1];
    const paramToken = creds.connectionParams?.token;
    const token = bearer ?? (typeof paramToken === "string" ? paramToken : undefined);
    if (token) return (await this.actorForToken(token))?.actor ?? null;
    const session = readCookie(creds.cookieHeader, SESSION_COOKIE);
    if (session) return (await this.userForSession(session))?.actor ?? null;
    return null;
  }

  private async actorForToken(token: string): Promise<{ actor: Actor; user: User } | null> {
    if (token.length > 512) return null;
    const row = await this.db.prisma.apiToken.findUnique({
      where: { tokenHash: tokenDigest(token) },
      include: { user: true },
    });
    const now = new Date();
    if (!row || row.revokedAt || row.user.disabled || (row.expiresAt && row.expiresAt <= now)) return null;
    if (!row.lastUsedAt || now.getTime() - row.lastUsedAt.getTime() > LAST_USED_RESOLUTION_MS) {
      await this.db.prisma.apiToken.update({ where: { id: row.id }, data: { lastUsedAt: now } });
    }
    return {
      user: row.user,
      actor: {
        kind: "token",
        id: row.user.username,
        name: `${row.user.displayName} (token ${row.name})`,
        role: row.user.role,
      },
    };
  }

  private async userForSession(sessionToken: string): Promise<{ actor: Actor; user: User } | null> {
    if (sessionToken.length > 512) return null;
    const row = await this.db.prisma.userSession.findUnique({
      where: { tokenHash: tokenDigest(sessionToken) },
      include: { user: true },
    });
    if (!row || row.endedAt || row.expiresAt <= new Date() || row.user.disabled) return null;
    return { user: row.user, actor: userActor(row.user) };
  }

  async me(creds: Credentials): Promise<MeDto | null> {
    const bearer = /^Bearer\s+(\S+)$/i.exec(creds.authorizationHeader ?? "")?.[1];
    const paramToken = creds.connectionParams?.token;
    const token = bearer ?? (typeof paramToken === "string" ? paramToken : undefined);
    if (token) {
      const found = await this.actorForToken(token);
      return found ? { user: toUserDto(found.user), via: "token" } : null;
    }
    const session = readCookie(creds.cookieHeader, SESSION_COOKIE);
    const found = session ? await this.userForSession(session) : null;
    return found ? { user: toUserDto(found.user), via: "session" } : null;
  }

  // ---- sign-in ----

  /** Returns the new session token for the cookie; never put it in a response body or a log. */
  async signIn(
    username: string,
    password: string,
    client: ClientInfo,
  ): Promise<{ sessionToken: string; user: UserDto; expiresAt: Date }> {
    const keys = [`account:${username}`, ...(client.address ? [`address:${client.address}`] : [])];
    const reserved = await this.reserveAttempt(keys);
    const user = await this.db.prisma.user.findUnique({ where: { username } });
    let ok = false;
    if (user) ok = await verifyPassword(password, user.passwordHash);
    else await burnPasswordCheck(password);
    if (!user || !ok || user.disabled) {
      // The reserved attempts stay: they are the failures the limit counts.
      await this.db.prisma.$transaction((tx) =>
        this.audit.record(tx, {
          actor: { kind: "user", id: username.slice(0, 64) },
          action: "auth.sign_in_failed",
          resource: { type: "user", id: user?.id ?? null },
          after: { reason: !user ? "unknown user" : user.disabled ? "user disabled" : "wrong password" },
          client,
        }),
      );
      throw badCredentials();
    }
    const sessionToken = newSessionToken();
    const expiresAt = new Date(Date.now() + this.sessionTtlSeconds * 1000);
    await this.db.prisma.$transaction(async (tx) => {
      // Success clears this account's failures; the address keeps its count.
      await tx.signInAttempt.deleteMany({ where: { OR: [{ key: `account:${username}` }, { id: { in: reserved } }] } });
      await tx.userSession.create({
        data: {
          id: randomUUID(),
          tokenHash: tokenDigest(sessionToken),
          userId: user.id,
          expiresAt,
          clientAddress: client.address?.slice(0, 100) ?? null,
          userAgent: client.userAgent?.slice(0, 500) ?? null,
        },
      });
      await tx.user.update({ where: { id: user.id }, data: { lastSignInAt: new Date() } });
      await this.audit.record(tx, {
        actor: { kind: "user", id: user.username },
        action: "auth.sign_in",
        resource: { type: "user", id: user.id },
        client,
      });
    });
    return { sessionToken, user: toUserDto(user), expiresAt };
  }

  /**
   * Records this attempt before checking the password, then counts: concurrent attempts from several
   * processes are all counted, so the limit cannot be raced.
   */
  private async reserveAttempt(keys: string[]): Promise<bigint[]> {
    const since = new Date(Date.now() - this.settings.SIGNIN_WINDOW_MINUTES * 60_000);
    const rows = await this.db.prisma.signInAttempt.createManyAndReturn({ data: keys.map((key) => ({ key })) });
    const ids = rows.map((r) => r.id);
    for (const key of keys) {
      const max = key.startsWith("account:")
        ? this.settings.SIGNIN_MAX_FAILURES_PER_ACCOUNT
        : this.settings.SIGNIN_MAX_FAILURES_PER_ADDRESS;
      const count = await this.db.prisma.signInAttempt.count({ where: { key, createdAt: { gte: since } } });
      if (count > max) {
        await this.db.prisma.signInAttempt.deleteMany({ where: { id: { in: ids } } });
        throw new TRPCError({
          code: "TOO_MANY_REQUESTS",
          message: `Too many failed sign-ins for this ${key.startsWith("account:") ? "account" : "address"}; try again in ${this.settings.SIGNIN_WINDOW_MINUTES} minutes.`,
        });
      }
    }
    return ids;
  }

  async signOut(creds: Credentials, caller: Caller): Promise<void> {
    const session = readCookie(creds.cookieHeader, SESSION_COOKIE);
    if (!session) return;
    await this.db.prisma.$transaction(async (tx) => {
      const ended = await tx.userSession.updateMany({
        where: { tokenHash: tokenDigest(session), endedAt: null },
        data: { endedAt: new Date() },
      });
      if (ended.count) {
        await this.audit.record(tx, {
          actor: caller.actor,
          action: "auth.sign_out",
          resource: { type: "user", id: caller.actor.id },
          client: caller.client,
        });
      }
    });
    this.changes.emit("credentials-changed");
  }

  async changePassword(caller: Caller, currentPassword: string, newPassword: string): Promise<void> {
    const user = await this.db.prisma.user.findUnique({ where: { username: caller.actor.id } });
    if (!user || !(await verifyPassword(currentPassword, user.passwordHash))) {
      throw new DomainError("FORBIDDEN", "The current password is not right.");
    }
    const passwordHash = await hashPassword(newPassword);
    await this.db.prisma.$transaction(async (tx) => {
      await tx.user.update({
        where: { id: user.id },
        data: { passwordHash, mustChangePassword: false, updatedAt: new Date() },
      });
      await this.audit.record(tx, {
        actor: caller.actor,
        action: "user.change_password",
        resource: { type: "user", id: user.id },
        client: caller.client,
      });
    });
  }

  // ---- users (admin) ----

  async listUsers(): Promise<UserDto[]> {
    return (await this.db.prisma.user.findMany({ orderBy: { username: "asc" } })).map(toUserDto);
  }

  async createUser(caller: Caller, input: z.output<typeof userCreateInputSchema>): Promise<UserDto> {
    const passwordHash = await hashPassword(input.password);
    return this.db.prisma.$transaction(async (tx) => {
      if (await tx.user.findUnique({ where: { username: input.username } })) {
        throw new DomainError("CONFLICT", `A user named ${input.username} already exists.`);
      }
      const user = await tx.user.create({
        data: {
          id: randomUUID(),
          username: input.username,
          displayName: input.displayName ?? input.username,
          role: input.role,
          passwordHash,
        },
      });
      const dto = toUserDto(user);
      await this.audit.record(tx, {
        actor: caller.actor,
        action: "user.create",
        resource: { type: "user", id: user.id },
        after: dto,
        client: caller.client,
      });
      return dto;
    });
  }

  async updateUser(caller: Caller, input: z.output<typeof userUpdateInputSchema>): Promise<UserDto> {
    const passwordHash = input.password ? await hashPassword(input.password) : undefined;
    const result = await this.db.prisma.$transaction(async (tx) => {
      await tx.$executeRaw`SELECT pg_advisory_xact_lock(${BOOTSTRAP_LOCK_KEY}::bigint)`;
      const before = await tx.user.findUnique({ where: { id: input.id } });
      if (!before) throw notFound("User", input.id);
      const losesAdmin =
        before.role === "admin" &&
        !before.disabled &&
        ((input.role && input.role !== "admin") || input.disabled === true);
      if (losesAdmin && (await tx.user.count({ where: { role: "admin", disabled: false } })) <= 1) {
        throw new DomainError(
          "PRECONDITION_FAILED",
          `${before.username} is the last enabled admin; make another admin first.`,
        );
      }
      const after = await tx.user.update({
        where: { id: input.id },
        data: {
          ...(input.displayName !== undefined ? { displayName: input.displayName } : {}),
          ...(input.role !== undefined ? { role: input.role as Role } : {}),
          ...(input.disabled !== undefined ? { disabled: input.disabled } : {}),
          ...(passwordHash ? { passwordHash, mustChangePassword: false } : {}),
          updatedAt: new Date(),
        },
      });
      // A disabled user, or a changed password, ends every open session at once.
      if (input.disabled || passwordHash) {
        await tx.userSession.updateMany({ where: { userId: after.id, endedAt: null }, data: { endedAt: new Date() } });
      }
      await this.audit.record(tx, {
        actor: caller.actor,
        action: input.disabled === true && Object.keys(input).length === 2 ? "user.disable" : "user.update",
        resource: { type: "user", id: after.id },
        before: toUserDto(before),
        after: { ...toUserDto(after), ...(passwordHash ? { passwordChanged: true } : {}) },
        client: caller.client,
      });
      return toUserDto(after);
    });
    this.changes.emit("credentials-changed");
    return result;
  }

  disableUser(caller: Caller, id: string): Promise<UserDto> {
    return this.updateUser(caller, { id, disabled: true });
  }

  // ---- API tokens ----

  private async userOf(actor: Actor): Promise<User> {
    const user = await this.db.prisma.user.findUnique({ where: { username: actor.id } });
    if (!user) throw new DomainError("FORBIDDEN", "API tokens belong to users; this caller is not one.");
    return user;
  }

  async listTokens(caller: Caller, all: boolean): Promise<ApiTokenDto[]> {
    if (all && caller.actor.role !== "admin")
      throw new DomainError("FORBIDDEN", "Listing everyone's tokens needs the admin role.");
    const where = all ? {} : { userId: (await this.userOf(caller.actor)).id };
    const rows = await this.db.prisma.apiToken.findMany({
      where,
      include: { user: { select: { username: true } } },
      orderBy: { createdAt: "desc" },
    });
    return rows.map(toTokenDto);
  }

  /** The token is in the result once, here; only its digest is kept. */
  async createToken(caller: Caller, name: string, expiresInDays?: number): Promise<ApiTokenDto & { token: string }> {
    const user = await this.userOf(caller.actor);
    const token = newApiToken();
    return this.db.prisma.$transaction(async (tx) => {
      const row = await tx.apiToken.create({
        data: {
          id: randomUUID(),
          userId: user.id,
          name,
          prefix: token.slice(0, API_TOKEN_PREFIX.length + 6),
          tokenHash: tokenDigest(token),
          expiresAt: expiresInDays ? new Date(Date.now() + expiresInDays * 86_400_000) : null,
        },
        include: { user: { select: { username: true } } },
      });
      const dto = toTokenDto(row);
      await this.audit.record(tx, {
        actor: caller.actor,
        action: "token.create",
        resource: { type: "api_token", id: row.id },
        after: dto,
        client: caller.client,
      });
      return { ...dto, token };
    });
  }

  async revokeToken(caller: Caller, id: string): Promise<ApiTokenDto> {
    const result = await this.db.prisma.$transaction(async (tx) => {
      const row = await tx.apiToken.findUnique({ where: { id }, include: { user: { select: { username: true } } } });
      // Someone else's token is "not found" to a non-admin: its existence is not theirs to learn.
      if (!row || (row.user.username !== caller.actor.id && caller.actor.role !== "admin"))
        throw notFound("API token", id);
      if (row.revokedAt) return toTokenDto(row);
      const after = await tx.apiToken.update({
        where: { id },
        data: { revokedAt: new Date() },
        include: { user: { select: { username: true } } },
      });
      await this.audit.record(tx, {
        actor: caller.actor,
        action: "token.revoke",
        resource: { type: "api_token", id },
        before: toTokenDto(row),
        after: toTokenDto(after),
        client: caller.client,
      });
      return toTokenDto(after);
    });
    this.changes.emit("credentials-changed");
    return result;
  }
}
