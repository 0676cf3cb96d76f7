export const ROLES = ["viewer", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];

export const roleRank = (r: Role): number => ROLES.indexOf(r);
export const hasRole = (have: Role, need: Role): boolean => roleRank(have) >= roleRank(need);

/** Who did something. Every change records `actor.id`. */
export interface Actor {
  kind: "user" | "token" | "system" | "worker";
  id: string;
  name: string;
  role: Role;
}
