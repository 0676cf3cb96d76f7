import { z } from "zod";
import { ROLES } from "./roles.js";
import { safeText } from "./text.js";

export const usernameSchema = z
  .string()
  .trim()
  .toLowerCase()
  .regex(/^[a-z0-9][a-z0-9._-]{1,63}$/, "Username: 2–64 characters, letters, digits, dot, dash or underscore");
export const passwordSchema = safeText(
  z.string().min(12, "Password: at least 12 characters").max(256, "Password: at most 256 characters"),
);

export const signInInputSchema = z.object({
  username: safeText(z.string().trim().toLowerCase().min(1, "Enter your username").max(64)),
  password: z.string().min(1, "Enter your password").max(256),
});

export const changePasswordInputSchema = z.object({
  currentPassword: z.string().min(1).max(256),
  newPassword: passwordSchema,
});

export const userCreateInputSchema = z.object({
  username: usernameSchema,
  displayName: safeText(z.string().trim().min(1).max(128)).optional(),
  role: z.enum(ROLES),
  password: passwordSchema,
});

export const userUpdateInputSchema = z
  .object({
    id: z.uuid({ error: "User id must be a UUID" }),
    displayName: safeText(z.string().trim().min(1).max(128)).optional(),
    role: z.enum(ROLES).optional(),
    password: passwordSchema.optional(),
    disabled: z.boolean().optional(),
  })
  .refine((v) => Object.keys(v).length > 1, { message: "Nothing to change" });

export const userIdInputSchema = z.object({ id: z.uuid({ error: "User id must be a UUID" }) });

export const tokenCreateInputSchema = z.object({
  name: safeText(z.string().trim().min(1, "Name the token").max(80)),
  /** Absent: the token does not expire. */
  expiresInDays: z.number().int().min(1).max(3650).optional(),
});
export const tokenListInputSchema = z.object({ all: z.boolean().default(false) }).default({ all: false });
export const tokenIdInputSchema = z.object({ id: z.uuid({ error: "Token id must be a UUID" }) });

export interface UserDto {
  id: string;
  username: string;
  displayName: string;
  role: (typeof ROLES)[number];
  disabled: boolean;
  mustChangePassword: boolean;
  createdAt: Date;
  lastSignInAt: Date | null;
}

export interface ApiTokenDto {
  id: string;
  username: string;
  name: string;
  prefix: string;
  createdAt: Date;
  expiresAt: Date | null;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

export interface MeDto {
  user: UserDto;
  via: "session" | "token";
}
