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
  SIGNIN_FAILURES_BEFORE_DELAY: number;
  SIGNIN_FAILURES_BEFORE_DELAY_PER_ADDRESS: number;
  SIGNIN_DELAY_MS: number;
  SIGNIN_MAX_DELAY_MS: number;
  SIGNIN_WINDOW_MINUTES: number;
}

/** Who is calling, and whether they may only change their password (a password someone else set). */
export interface ResolvedCaller {
  actor: Actor;
  /** A session of a user whose password an admin set: only changing it and signing out are open. */
  passwordChangeRequired: boolean;
}

/** A refused sign-in attempt that may be tried again after `retryAfterMs` (also sent as Retry-After). */
export class SignInDelayedError extends TRPCError {
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super({ code: "TOO_MANY_REQUESTS", message });
  }
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
  /** The request's credentials: a password change keeps the session they carry and ends the others. */
  credentials?: Credentials;
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

interface SignInLimit {
  key: string;
  /** Failures within the window before attempts are delayed. */
  free: number;
  /** For the message: whose attempts are delayed. */
  what: string;
}

/** The key an address is counted under: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64. */
export function addressKey(address: string): string {
  const a = address.trim().toLowerCase().replace(/%.*$/, "");
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(a);
  if (mapped) return mapped[1] as string;
  if (!a.includes(":")) return a;
  const [head = "", tail] = a.split("::");
  const groups = (part: string) => (part ? part.split(":").flatMap((g) => (g.includes(".") ? ["0", "0"] : [g])) : []);
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = tail === undefined ? h : [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill("0"), ...t];
  return `${all
    .slice(0, 4)
    .map((g) => (Number.parseInt(g, 16) || 0).toString(16))
    .join(":")}::/64`;
}

function describeWait(ms: number): string {
  const s = Math.ceil(ms / 1000);
  if (s < 120) return `${s} second${s === 1 ? "" : "s"}`;
  return `${Math.ceil(s / 60)} minutes`;
}

const badCredentials = () => new TRPCError({ code: "UNAUTHORIZED", message: "Wrong username or password." });

/** The first admin's username and generated one-time password, for the start banner. */
export interface FirstStartSignIn {
  username: string;
  password: string;
}

export class AuthService {
  /** Emits "credentials-changed" after a sign-out, a token revocation or a user change, so live sockets are re-checked. */
  readonly changes = new EventEmitter();
  private firstStartSignIn: FirstStartSignIn | null = null;

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
   * one-time password, returned (and kept for `takeFirstStartSignIn`) so the start banner shows it once: the
   * only secret this process ever prints, on purpose: it is the way in. AGENCY_BOOTSTRAP_TOKEN, if set, becomes
   * an API token of that admin.
   */
  async bootstrap(): Promise<FirstStartSignIn | null> {
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
      this.firstStartSignIn = printed;
      this.log.info(
        { username: printed.username },
        `First start: created admin "${printed.username}" with a one-time password, shown once in the start banner`,
      );
    }
    return printed;
  }

  /** The first admin's sign-in made by this process's bootstrap, once: later calls return null. */
  takeFirstStartSignIn(): FirstStartSignIn | null {
    const signIn = this.firstStartSignIn;
    this.firstStartSignIn = null;
    return signIn;
  }

  // ---- resolving callers ----

  /** Who the caller is: a bearer API token, a token in WebSocket connectionParams, or the session cookie. */
  async resolveActor(creds: Credentials): Promise<Actor | null> {
    return (await this.resolveCaller(creds))?.actor ?? null;
  }

  /**
   * As resolveActor, plus whether the caller may only change their password. That holds for sessions
   * only: the flag says someone else (an admin, or the bootstrap) knows the password, and a session is
   * what that password buys. API tokens are credentials the user (or the host's operator, for
   * AGENCY_BOOTSTRAP_TOKEN) made on purpose, and a flagged session cannot make new ones.
   */
  async resolveCaller(creds: Credentials): Promise<ResolvedCaller | null> {
    const bearer = /^Bearer\s+(\S+)$/i.exec(creds.authorizationHeader ?? "")?.[1];
    const paramToken = creds.connectionParams?.token;
    const token = bearer ?? (typeof paramToken === "string" ? paramToken : undefined);
    if (token) {
      const found = await this.actorForToken(token);
      return found ? { actor: found.actor, passwordChangeRequired: false } : null;
    }
    const session = readCookie(creds.cookieHeader, SESSION_COOKIE);
    if (!session) return null;
    const found = await this.userForSession(session);
    return found ? { actor: found.actor, passwordChangeRequired: found.user.mustChangePassword } : null;
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
    const limits = this.signInLimits(username, client.address ?? null);
    const reserved = await this.reserveAttempt(limits);
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
      await this.pruneAttempts();
      throw badCredentials();
    }
    const sessionToken = newSessionToken();
    const expiresAt = new Date(Date.now() + this.sessionTtlSeconds * 1000);
    const pairKey = limits[0]?.key as string;
    await this.db.prisma.$transaction(async (tx) => {
      // Success clears this account's failures from this address; the address keeps its count.
      await tx.signInAttempt.deleteMany({ where: { OR: [{ key: pairKey }, { id: { in: reserved } }] } });
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
        ...(user.mustChangePassword ? { after: { mustChangePassword: true } } : {}),
        client,
      });
    });
    return { sessionToken, user: toUserDto(user), expiresAt };
  }

  /**
   * The counters an attempt is judged by: this account from this address, and this address across
   * accounts. Never the account alone: that would let anyone lock its owner out from everywhere.
   * IPv6 clients are counted per /64, which one subscriber usually holds whole.
   */
  private signInLimits(username: string, address: string | null): SignInLimit[] {
    const from = address ? addressKey(address) : "in-process";
    return [
      {
        key: `pair:${username.slice(0, 64)}@${from}`.slice(0, 200),
        free: this.settings.SIGNIN_FAILURES_BEFORE_DELAY,
        what: "this account from your address",
      },
      {
        key: `address:${from}`.slice(0, 200),
        free: this.settings.SIGNIN_FAILURES_BEFORE_DELAY_PER_ADDRESS,
        what: "your address",
      },
    ];
  }

  /**
   * Records this attempt before checking the password, then judges it by the failures recorded before
   * (and beside) it: concurrent attempts from several processes all see each other, so the limit
   * cannot be raced. Past the free failures, the next attempt waits SIGNIN_DELAY_MS after the last
   * failure, doubled for each failure beyond, up to SIGNIN_MAX_DELAY_MS. A refused attempt is not a
   * failure (its row is removed): hammering while delayed does not push the delay further.
   * In the database rather than in memory, so every process sharing it applies one limit.
   */
  private async reserveAttempt(limits: SignInLimit[]): Promise<bigint[]> {
    const now = Date.now();
    const since = new Date(now - this.settings.SIGNIN_WINDOW_MINUTES * 60_000);
    const rows = await this.db.prisma.signInAttempt.createManyAndReturn({
      data: limits.map((l) => ({ key: l.key })),
    });
    const ids = rows.map((r) => r.id);
    for (const limit of limits) {
      const earlier = await this.db.prisma.signInAttempt.aggregate({
        where: { key: limit.key, createdAt: { gte: since }, id: { notIn: ids } },
        _count: { _all: true },
        _max: { createdAt: true },
      });
      const failures = earlier._count._all;
      const last = earlier._max.createdAt;
      if (failures < limit.free || !last) continue;
      const delay = Math.min(
        this.settings.SIGNIN_DELAY_MS * 2 ** Math.min(failures - limit.free, 40),
        this.settings.SIGNIN_MAX_DELAY_MS,
      );
      const retryAfterMs = last.getTime() + delay - now;
      if (retryAfterMs <= 0) continue;
      await this.db.prisma.signInAttempt.deleteMany({ where: { id: { in: ids } } });
      throw new SignInDelayedError(
        `Too many failed sign-ins for ${limit.what}; try again in ${describeWait(retryAfterMs)}. ` +
          "Signing in from elsewhere is not affected.",
        retryAfterMs,
      );
    }
    return ids;
  }

  private lastPrune = 0;
  /** Failures older than the window count for nothing: drop them, at most once a minute per process. */
  private async pruneAttempts(): Promise<void> {
    const now = Date.now();
    if (now - this.lastPrune < 60_000) return;
    this.lastPrune = now;
    const before = new Date(now - this.settings.SIGNIN_WINDOW_MINUTES * 60_000);
    await this.db.prisma.signInAttempt.deleteMany({ where: { createdAt: { lt: before } } }).catch((err: Error) => {
      this.log.warn({ err }, "pruning old sign-in attempts failed");
    });
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

  /**
   * Changes one's own password and ends the user's other sessions (whoever else knew the old password
   * is signed out); the session making the change stays. Clears "must change password".
   */
  async changePassword(
    caller: Caller,
    currentPassword: string,
    newPassword: string,
  ): Promise<{ endedSessions: number }> {
    const user = await this.db.prisma.user.findUnique({ where: { username: caller.actor.id } });
    if (!user || !(await verifyPassword(currentPassword, user.passwordHash))) {
      throw new DomainError("FORBIDDEN", "The current password is not right.");
    }
    if (newPassword === currentPassword) {
      throw new DomainError("BAD_REQUEST", "The new password must differ from the current one.");
    }
    const passwordHash = await hashPassword(newPassword);
    const current = readCookie(caller.credentials?.cookieHeader, SESSION_COOKIE);
    const keep = caller.actor.kind === "user" && current ? tokenDigest(current) : null;
    const endedSessions = await this.db.prisma.$transaction(async (tx) => {
      await tx.user.update({
        where: { id: user.id },
        data: { passwordHash, mustChangePassword: false, updatedAt: new Date() },
      });
      const ended = await tx.userSession.updateMany({
        where: { userId: user.id, endedAt: null, ...(keep ? { tokenHash: { not: keep } } : {}) },
        data: { endedAt: new Date() },
      });
      await this.audit.record(tx, {
        actor: caller.actor,
        action: "user.change_password",
        resource: { type: "user", id: user.id },
        after: { endedOtherSessions: ended.count, wasRequired: user.mustChangePassword },
        client: caller.client,
      });
      return ended.count;
    });
    this.changes.emit("credentials-changed");
    return { endedSessions };
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
          // The admin knows this password: the user chooses their own at first sign-in.
          mustChangePassword: true,
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
          // A password an admin sets is known to the admin: the user must choose their own next.
          ...(passwordHash ? { passwordHash, mustChangePassword: true } : {}),
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

  /**
   * An admin resets a user's password to a generated temporary one (returned here, once), which the
   * user must change at their next sign-in; all the user's sessions end. Not for oneself: an admin
   * changes their own password like everyone else, with the current one.
   */
  async resetPassword(caller: Caller, id: string): Promise<{ user: UserDto; temporaryPassword: string }> {
    const temporaryPassword = generatePassword();
    const passwordHash = await hashPassword(temporaryPassword);
    const result = await this.db.prisma.$transaction(async (tx) => {
      const before = await tx.user.findUnique({ where: { id } });
      if (!before) throw notFound("User", id);
      if (before.username === caller.actor.id) {
        throw new DomainError("BAD_REQUEST", "Change your own password on the Password page, with your current one.");
      }
      const after = await tx.user.update({
        where: { id },
        data: { passwordHash, mustChangePassword: true, updatedAt: new Date() },
      });
      const ended = await tx.userSession.updateMany({
        where: { userId: id, endedAt: null },
        data: { endedAt: new Date() },
      });
      await this.audit.record(tx, {
        actor: caller.actor,
        action: "user.reset_password",
        resource: { type: "user", id },
        after: { username: after.username, mustChangePassword: true, endedSessions: ended.count },
        client: caller.client,
      });
      return toUserDto(after);
    });
    this.changes.emit("credentials-changed");
    return { user: result, temporaryPassword };
  }

  /** An admin signs a user out everywhere (e.g. a lost laptop); API tokens are revoked separately. */
  async endSessions(caller: Caller, id: string): Promise<{ endedSessions: number }> {
    const endedSessions = await this.db.prisma.$transaction(async (tx) => {
      const user = await tx.user.findUnique({ where: { id } });
      if (!user) throw notFound("User", id);
      const ended = await tx.userSession.updateMany({
        where: { userId: id, endedAt: null },
        data: { endedAt: new Date() },
      });
      await this.audit.record(tx, {
        actor: caller.actor,
        action: "user.end_sessions",
        resource: { type: "user", id },
        after: { username: user.username, endedSessions: ended.count },
        client: caller.client,
      });
      return ended.count;
    });
    this.changes.emit("credentials-changed");
    return { endedSessions };
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
