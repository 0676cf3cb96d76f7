import { useEffect, useId, useState } from "react";
import { STATE_LABELS, TASK_STATES } from "../../shared/task-state.js";
import { MODES, PRIORITIES, RISK_TIERS, TASK_SORTS, type TaskSort } from "../../shared/task-vocabulary.js";
import type { UrlFilter } from "./filter-url.js";

const SORT_LABELS: Record<TaskSort, string> = {
  created_desc: "Newest first",
  created_asc: "Oldest first",
  priority_desc: "Highest priority first",
  priority_asc: "Lowest priority first",
  updated_desc: "Recently updated first",
  updated_asc: "Least recently updated first",
};

const TEXT_DEBOUNCE_MS = 300;

interface Props {
  filter: UrlFilter;
  onChange: (next: UrlFilter) => void;
  onClear: () => void;
}

function toggle<T>(values: readonly T[], value: T, on: boolean, order: readonly T[]): T[] {
  const set = new Set(values);
  if (on) set.add(value);
  else set.delete(value);
  return order.filter((v) => set.has(v));
}

function CheckGroup<T extends string | number>({
  legend,
  options,
  selected,
  label,
  onChange,
}: {
  legend: string;
  options: readonly T[];
  selected: readonly T[];
  label: (v: T) => string;
  onChange: (next: T[]) => void;
}) {
  return (
    <fieldset className="check-group">
      <legend>{legend}</legend>
      {options.map((o) => (
        <label key={String(o)} className="check">
          <input
            type="checkbox"
            checked={selected.includes(o)}
            onChange={(e) => onChange(toggle(selected, o, e.target.checked, options))}
          />
          {label(o)}
        </label>
      ))}
    </fieldset>
  );
}

const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

export function FilterPanel({ filter, onChange, onClear }: Props) {
  const id = useId();
  const [text, setText] = useState(filter.text);

  // The address bar is the source of truth: follow it when a view is applied or the user navigates back.
  useEffect(() => setText((typed) => (typed.trim() === filter.text ? typed : filter.text)), [filter.text]);

  useEffect(() => {
    if (text.trim() === filter.text.trim()) return;
    const t = setTimeout(() => onChange({ ...filter, text }), TEXT_DEBOUNCE_MS);
    return () => clearTimeout(t);
  }, [text, filter, onChange]);

  return (
    <form className="filter-panel" aria-label="Filters" onSubmit={(e) => e.preventDefault()}>
      <div className="field">
        <label htmlFor={`${id}-q`}>Search title, description or task id</label>
        <input
          id={`${id}-q`}
          type="search"
          value={text}
          placeholder="Words, or an id (8+ characters)"
          maxLength={200}
          onChange={(e) => setText(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter") onChange({ ...filter, text });
          }}
        />
      </div>
      <div className="field">
        <label htmlFor={`${id}-sort`}>Sort</label>
        <select
          id={`${id}-sort`}
          value={filter.sort}
          onChange={(e) => onChange({ ...filter, sort: e.target.value as TaskSort })}
        >
          {TASK_SORTS.map((s) => (
            <option key={s} value={s}>
              {SORT_LABELS[s]}
            </option>
          ))}
        </select>
      </div>
      <CheckGroup
        legend="State"
        options={TASK_STATES}
        selected={filter.states}
        label={(s) => STATE_LABELS[s]}
        onChange={(states) => onChange({ ...filter, states })}
      />
      <CheckGroup
        legend="Priority"
        options={PRIORITIES}
        selected={filter.priorities}
        label={capitalize}
        onChange={(priorities) => onChange({ ...filter, priorities })}
      />
      <CheckGroup
        legend="Risk tier"
        options={RISK_TIERS}
        selected={filter.riskTiers}
        label={(t) => `Tier ${t}`}
        onChange={(riskTiers) => onChange({ ...filter, riskTiers })}
      />
      <CheckGroup
        legend="Mode"
        options={MODES}
        selected={filter.modes}
        label={capitalize}
        onChange={(modes) => onChange({ ...filter, modes })}
      />
      <fieldset className="check-group">
        <legend>Created</legend>
        <div className="field">
          <label htmlFor={`${id}-from`}>From</label>
          <input
            id={`${id}-from`}
            type="date"
            value={filter.from}
            onChange={(e) => onChange({ ...filter, from: e.target.value })}
          />
        </div>
        <div className="field">
          <label htmlFor={`${id}-to`}>To (inclusive)</label>
          <input
            id={`${id}-to`}
            type="date"
            value={filter.to}
            onChange={(e) => onChange({ ...filter, to: e.target.value })}
          />
        </div>
      </fieldset>
      <button type="button" className="btn" onClick={onClear}>
        Clear filters
      </button>
    </form>
  );
}
