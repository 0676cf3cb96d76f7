import { AuditTable } from "../components/AuditTable.js";
import { ErrorMessage } from "../components/ErrorMessage.js";
import { trpc } from "../trpc.js";

/** This task's entries in the audit trail: who created, canceled, retried or overrode it, and when. */
export function TaskAudit({ taskId }: { taskId: string }) {
  const audit = trpc.audit.list.useInfiniteQuery(
    { resourceId: taskId, limit: 50 },
    { getNextPageParam: (last) => last.nextCursor },
  );
  if (audit.isPending) return <p className="loading">Loading the audit trail…</p>;
  if (audit.error) return <ErrorMessage title="Could not load the audit trail:" error={audit.error} />;
  const entries = audit.data.pages.flatMap((p) => p.items);
  if (!entries.length) return <p className="muted">No audit entries for this task.</p>;
  return (
    <div>
      <AuditTable entries={entries} showResource={false} />
      {audit.hasNextPage ? (
        <div className="load-more">
          <button type="button" className="btn" disabled={audit.isFetching} onClick={() => void audit.fetchNextPage()}>
            {audit.isFetchingNextPage ? "Loading…" : "Load older entries"}
          </button>
        </div>
      ) : null}
    </div>
  );
}
