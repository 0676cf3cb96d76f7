import { type FormEvent, useId, useState } from "react";
import { trpc } from "../trpc.js";
import { fromTaskFilter, toSearchParams, toTaskFilter, type UrlFilter } from "./filter-url.js";

interface Props {
  filter: UrlFilter;
  onApply: (filter: UrlFilter) => void;
}

/** The user's saved filters: save the current one under a name, apply one, delete one. */
export function SavedViews({ filter, onApply }: Props) {
  const id = useId();
  const utils = trpc.useUtils();
  const views = trpc.views.list.useQuery();
  const [name, setName] = useState("");
  const save = trpc.views.save.useMutation({
    onSuccess: async () => {
      setName("");
      await utils.views.list.invalidate();
    },
  });
  const remove = trpc.views.delete.useMutation({ onSuccess: () => utils.views.list.invalidate() });
  const current = toSearchParams(filter).toString();

  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.reset();
    save.mutate({ name: name.trim(), filter: toTaskFilter(filter) });
  };

  const nameError = save.error?.data?.fieldErrors?.find((f) => f.path[0] === "name")?.message;

  return (
    <section className="saved-views" aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`} className="section-title">
        Saved views
      </h2>
      <div className="views-row">
        {views.isPending ? <span className="muted">Loading views…</span> : null}
        {views.error ? <span className="inline-error">Could not load views: {views.error.message}</span> : null}
        {views.data?.length === 0 ? <span className="muted">No saved views yet.</span> : null}
        <ul className="view-chips">
          {views.data?.map((v) => {
            const params = toSearchParams(fromTaskFilter(v.filter)).toString();
            const active = params === current;
            return (
              <li key={v.id} className="view-chip" data-active={active || undefined}>
                <button
                  type="button"
                  className="view-apply"
                  aria-pressed={active}
                  onClick={() => onApply(fromTaskFilter(v.filter))}
                >
                  {v.name}
                </button>
                <button
                  type="button"
                  className="view-delete"
                  aria-label={`Delete view ${v.name}`}
                  disabled={remove.isPending}
                  onClick={() => remove.mutate({ id: v.id })}
                >
                  ×
                </button>
              </li>
            );
          })}
        </ul>
      </div>
      <form className="save-view" onSubmit={submit} noValidate>
        <label htmlFor={`${id}-name`} className="save-view-label">
          Save current filter as
        </label>
        <input
          id={`${id}-name`}
          value={name}
          maxLength={80}
          aria-invalid={nameError ? true : undefined}
          onChange={(e) => setName(e.target.value)}
        />
        <button type="submit" className="btn" disabled={save.isPending}>
          Save view
        </button>
      </form>
      <p className="field-error" role={save.error || remove.error ? "alert" : undefined}>
        {save.error ? `Could not save the view: ${nameError ?? save.error.message}` : ""}
        {remove.error ? `Could not delete the view: ${remove.error.message}` : ""}
      </p>
    </section>
  );
}
