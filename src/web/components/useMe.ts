import { hasRole, type Role } from "../../shared/roles.js";
import { trpc } from "../trpc.js";

/** The signed-in user, from the same cached `auth.me` the shell uses to guard every page. */
export function useMe() {
  const me = trpc.auth.me.useQuery(undefined, { staleTime: 60_000, retry: false });
  return me.data?.user ?? null;
}

/**
 * Whether the signed-in user holds at least this role. The console hides what a role may not use;
 * the server refuses it anyway, so this is for clarity, not for safety.
 */
export function useHasRole(need: Role): boolean {
  const user = useMe();
  return user ? hasRole(user.role, need) : false;
}
