import { trpc } from "../trpc.js";

// Apart from ApprovalActions: the header loads this on every page, before main.tsx sets zod's jitless mode, so it
// must not pull the approval schemas (zod) into the shell.
/** The navigation's count of tasks awaiting approval (none shown at zero). */
export function ApprovalCount() {
  const queue = trpc.tasks.approvalQueue.useQuery(undefined, { refetchInterval: 30_000, staleTime: 10_000 });
  const n = queue.data?.count ?? 0;
  if (!n) return null;
  return (
    <span className="nav-count" data-testid="approvals-count">
      {" "}
      {n}
      <span className="visually-hidden"> waiting</span>
    </span>
  );
}
