import { keepPreviousData } from "@tanstack/react-query";
import { type FormEvent, useEffect, useMemo, useState } from "react";
import { useSearchParams } from "react-router-dom";
import { AUDIT_ACTIONS, AUDIT_ACTOR_KINDS, auditListInputSchema } from "../../shared/audit.js";
import { AuditTable } from "../components/AuditTable.js";
import { ErrorMessage } from "../components/ErrorMessage.js";
import { ListStatus } from "../components/ListStatus.js";
import { trpc } from "../trpc.js";
import {
  type AuditUrlFilter,
  auditExportHref,
  EMPTY_AUDIT_FILTER,
  parseAuditUrl,
  toAuditInput,
  toAuditSearch,
} from "./audit-url.js";
import { ProvenancePanel } from "./ProvenancePanel.js";

export default function AuditPage() {
  const [params, setParams] = useSearchParams();
  const paramString = params.toString();
  const filter = useMemo(() => parseAuditUrl(new URLSearchParams(paramString)), [paramString]);
  const input = useMemo(() => toAuditInput(filter), [filter]);
  const valid = useMemo(() => auditListInputSchema.safeParse(input), [input]);

  const list = trpc.audit.list.useInfiniteQuery(input, {
    enabled: valid.success,
    getNextPageParam: (last) => last.nextCursor,
    placeholderData: keepPreviousData,
  });
  const entries = useMemo(() => list.data?.pages.flatMap((p) => p.items) ?? [], [list.data]);

  return (
    <div className="page">
      <div className="page-head">
        <h1>Audit trail</h1>
        {valid.success ? (
          <a className="btn" href={auditExportHref(filter)} download>
            Download CSV
          </a>
        ) : null}
      </div>
      <ProvenancePanel />
      <div className="list-layout">
        <aside>
          <AuditFilters filter={filter} onApply={(f) => setParams(toAuditSearch(f))} />
        </aside>
        <section className="list-main" aria-label="Audit entries">
          {!valid.success ? (
            <ErrorMessage title="This filter cannot be used:">
              <ul>
                {valid.error.issues.map((i) => (
                  <li key={i.message}>{i.message}</li>
                ))}
              </ul>
            </ErrorMessage>
          ) : null}
          <ListStatus
            loaded={Boolean(list.data)}
            count={entries.length}
            hasMore={Boolean(list.hasNextPage)}
            updating={list.isFetching}
            singular="entry"
            plural="entries"
          />
          {list.error ? <ErrorMessage title="Could not load the audit trail:" error={list.error} /> : null}
          {valid.success && list.isPending && !list.error ? (
            <p className="loading table-placeholder">Loading…</p>
          ) : null}
          {list.data && entries.length === 0 ? (
            <div className="empty-state">
              <p>No audit entries match these filters.</p>
            </div>
          ) : null}
          {entries.length ? <AuditTable entries={entries} /> : null}
          {list.hasNextPage ? (
            <div className="load-more">
              <button
                type="button"
                className="btn"
                disabled={list.isFetching}
                onClick={() => void list.fetchNextPage()}
              >
                {list.isFetchingNextPage ? "Loading…" : "Load older entries"}
              </button>
            </div>
          ) : null}
        </section>
      </div>
    </div>
  );
}

const actionKnown = (a: string) => (AUDIT_ACTIONS as readonly string[]).includes(a);

function AuditFilters({ filter, onApply }: { filter: AuditUrlFilter; onApply: (f: AuditUrlFilter) => void }) {
  const [draft, setDraft] = useState(filter);
  // The address bar is the source of truth: follow it on back/forward.
  useEffect(() => setDraft(filter), [filter]);
  const set = (k: keyof AuditUrlFilter, v: string) => setDraft((d) => ({ ...d, [k]: v }));
  const submit = (e: FormEvent) => {
    e.preventDefault();
    onApply(draft);
  };
  const text = (k: keyof AuditUrlFilter, label: string, hint?: string, max = 128) => (
    <div className="field">
      <label htmlFor={`af-${k}`}>{label}</label>
      <input id={`af-${k}`} value={draft[k]} maxLength={max} onChange={(e) => set(k, e.target.value)} />
      {hint ? <p className="hint">{hint}</p> : null}
    </div>
  );
  return (
    <form className="filter-panel" aria-label="Audit filters" onSubmit={submit}>
      {text("actor", "Actor", "A username, token id, or system")}
      <div className="field">
        <label htmlFor="af-kind">Actor kind</label>
        <select id="af-kind" value={draft.kind} onChange={(e) => set("kind", e.target.value)}>
          <option value="">Any</option>
          {AUDIT_ACTOR_KINDS.map((k) => (
            <option key={k} value={k}>
              {k}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="af-action">Action</label>
        <select id="af-action" value={draft.action} onChange={(e) => set("action", e.target.value)}>
          <option value="">Any</option>
          {/* An action in the address that this console does not know (a newer server's) stays selectable. */}
          {[...AUDIT_ACTIONS, ...(draft.action && !actionKnown(draft.action) ? [draft.action] : [])].map((a) => (
            <option key={a} value={a}>
              {a}
            </option>
          ))}
        </select>
      </div>
      {text("type", "Resource type", "e.g. task, user, worker, api_token", 64)}
      {text("resource", "Resource id")}
      <div className="field">
        <label htmlFor="af-from">From</label>
        <input id="af-from" type="datetime-local" value={draft.from} onChange={(e) => set("from", e.target.value)} />
      </div>
      <div className="field">
        <label htmlFor="af-to">To</label>
        <input id="af-to" type="datetime-local" value={draft.to} onChange={(e) => set("to", e.target.value)} />
      </div>
      <div className="form-buttons">
        <button type="submit" className="btn btn-primary">
          Apply
        </button>
        <button
          type="button"
          className="btn"
          onClick={() => {
            setDraft(EMPTY_AUDIT_FILTER);
            onApply(EMPTY_AUDIT_FILTER);
          }}
        >
          Clear
        </button>
      </div>
    </form>
  );
}
