import { type FormEvent, useState } from "react";
import { Link, useNavigate, useSearchParams } from "react-router-dom";
import { LIMITS, MODES, type Mode, PRIORITIES, type Priority, RISK_TIERS } from "../../shared/task-spec.js";
import { STATE_LABELS } from "../../shared/task-state.js";
import { Breadcrumb } from "../components/Breadcrumb.js";
import { ErrorMessage } from "../components/ErrorMessage.js";
import { type RouterOutputs, trpc } from "../trpc.js";
import { CriteriaEditor } from "./CriteriaEditor.js";
import { Field } from "./Field.js";
import {
  emptyForm,
  errorsFromIssues,
  errorsUnder,
  type FieldErrors,
  formFromSpec,
  type SpecForm,
  toSpec,
} from "./form-model.js";
import { TierTimeouts } from "./TierTimeouts.js";

/** Paths shown next to a field; anything else goes into the summary at the top. */
const PLACED = [
  "title",
  "description",
  "priority",
  "riskTier",
  "mode",
  "capability",
  "acceptanceCriteria",
  "scope.include",
  "scope.exclude",
  "budget.maxFiles",
  "budget.maxLinesChanged",
  "budget.maxDurationSec",
  "budget.maxCostUsd",
  "input",
  "script",
];
const isPlaced = (path: string) => PLACED.some((p) => path === p || path.startsWith(`${p}.`));

const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

type TaskDetail = RouterOutputs["tasks"]["get"];

/** `/tasks/new` submits a new task; `/tasks/new?rerunOf=<id>` starts from a finished task's spec (tasks.rerun). */
export default function SubmitPage() {
  const [params] = useSearchParams();
  const rerunOf = params.get("rerunOf");
  return rerunOf ? <RerunForm key={rerunOf} id={rerunOf} /> : <SpecFormPage />;
}

function RerunForm({ id }: { id: string }) {
  const original = trpc.tasks.get.useQuery({ id }, { retry: false });
  if (original.isPending) return <p className="loading page">Loading the task to rerun…</p>;
  if (original.error) {
    return (
      <div className="page page-narrow">
        <h1>Cannot rerun this task</h1>
        <ErrorMessage title="The server answered:" error={original.error} />
        <p>
          <Link to="/tasks">Back to the task list</Link>
        </p>
      </div>
    );
  }
  return <SpecFormPage original={original.data} />;
}

function SpecFormPage({ original }: { original?: TaskDetail }) {
  const navigate = useNavigate();
  const utils = trpc.useUtils();
  const [form, setForm] = useState<SpecForm>(() => (original ? formFromSpec(original.spec) : emptyForm()));
  const [errors, setErrors] = useState<FieldErrors>({});
  const handlers = {
    onSuccess: async (task: { id: string }) => {
      await utils.tasks.list.invalidate();
      if (original) await utils.tasks.get.invalidate({ id: original.id });
      navigate(`/tasks/${task.id}`);
    },
    onError: (err: { data?: { fieldErrors?: { path: string[]; message: string }[] | null } | null }) => {
      // A rerun's edits are the whole form: `edits.title` is the title box's error.
      const fieldErrors = err.data?.fieldErrors?.map((f) => ({
        ...f,
        path: f.path[0] === "edits" ? f.path.slice(1) : f.path,
      }));
      if (fieldErrors?.length) setErrors(errorsFromIssues(fieldErrors));
    },
  };
  const createTask = trpc.tasks.create.useMutation(handlers);
  const rerunTask = trpc.tasks.rerun.useMutation(handlers);
  const create = original ? rerunTask : createTask;
  const heading = original ? "Rerun with changes" : "New task";

  const set = <K extends keyof SpecForm>(key: K, value: SpecForm[K]) => setForm((f) => ({ ...f, [key]: value }));
  const errs = (path: string) => errorsUnder(errors, path);

  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const formEl = e.currentTarget;
    create.reset();
    const result = toSpec(form);
    if (!result.ok) {
      setErrors(result.errors);
      // Takes the keyboard to the first field that needs fixing.
      requestAnimationFrame(() => {
        formEl.querySelector<HTMLElement>("[aria-invalid='true']")?.focus();
      });
      return;
    }
    setErrors({});
    if (original) rerunTask.mutate({ id: original.id, edits: result.spec });
    else createTask.mutate(result.spec);
  };

  const problemCount = Object.values(errors).reduce((n, m) => n + m.length, 0);
  const unplaced = Object.entries(errors).filter(([p]) => !isPlaced(p));

  return (
    <div className="page page-narrow">
      <Breadcrumb parent="Tasks" to="/tasks" current={heading} />
      <h1>{heading}</h1>
      {original ? (
        <p className="notice notice-info" data-testid="rerun-of">
          Rerun of <Link to={`/tasks/${original.id}`}>{original.title}</Link> (
          {STATE_LABELS[original.state].toLowerCase()}): the form holds its spec; change what should differ. The
          original stays as it is.
        </p>
      ) : null}
      <form
        className="spec-form"
        onSubmit={submit}
        // Ctrl+Enter (⌘+Enter) submits from any field, a multi-line one included.
        onKeyDown={(e) => {
          if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
            e.preventDefault();
            e.currentTarget.requestSubmit();
          }
        }}
        noValidate
        aria-label={heading}
      >
        <div className="form-summary">
          {problemCount ? (
            <ErrorMessage
              title={`The task was not submitted: fix ${problemCount === 1 ? "1 problem" : `${problemCount} problems`} below.`}
            >
              {unplaced.length ? (
                <ul>
                  {unplaced.map(([p, m]) => (
                    <li key={p}>
                      {p}: {m.join(" · ")}
                    </li>
                  ))}
                </ul>
              ) : null}
            </ErrorMessage>
          ) : null}
          {create.error && !create.error.data?.fieldErrors?.length ? (
            <ErrorMessage title="The server refused the task:" error={create.error} />
          ) : null}
        </div>

        <fieldset className="form-section">
          <legend>What to do</legend>
          <Field id="f-title" label="Title" errors={errs("title")}>
            {(aria) => (
              <input
                {...aria}
                value={form.title}
                maxLength={LIMITS.title}
                onChange={(e) => set("title", e.target.value)}
              />
            )}
          </Field>
          <Field id="f-description" label="Description" errors={errs("description")}>
            {(aria) => (
              <textarea
                {...aria}
                rows={5}
                value={form.description}
                maxLength={LIMITS.description}
                onChange={(e) => set("description", e.target.value)}
              />
            )}
          </Field>
          <div className="form-row">
            <Field id="f-priority" label="Priority" errors={errs("priority")}>
              {(aria) => (
                <select {...aria} value={form.priority} onChange={(e) => set("priority", e.target.value as Priority)}>
                  {PRIORITIES.map((p) => (
                    <option key={p} value={p}>
                      {capitalize(p)}
                    </option>
                  ))}
                </select>
              )}
            </Field>
            <Field id="f-tier" label="Risk tier" errors={errs("riskTier")}>
              {(aria) => (
                <select
                  {...aria}
                  value={form.riskTier}
                  onChange={(e) => set("riskTier", Number(e.target.value) as SpecForm["riskTier"])}
                >
                  {RISK_TIERS.map((t) => (
                    <option key={t} value={t}>
                      Tier {t}
                    </option>
                  ))}
                </select>
              )}
            </Field>
            <Field id="f-mode" label="Mode" errors={errs("mode")}>
              {(aria) => (
                <select {...aria} value={form.mode} onChange={(e) => set("mode", e.target.value as Mode)}>
                  {MODES.map((m) => (
                    <option key={m} value={m}>
                      {capitalize(m)}
                    </option>
                  ))}
                </select>
              )}
            </Field>
          </div>
          <TierTimeouts tier={form.riskTier} maxDurationSec={form.maxDurationSec} />
          <div className="form-row form-row-half">
            <Field
              id="f-capability"
              label="Required capability"
              hint="The workers that may take the task have it. Lower case: a-z, 0-9, '.', '_', '-'"
              errors={errs("capability")}
            >
              {(aria) => (
                <input
                  {...aria}
                  className="mono"
                  value={form.capability}
                  maxLength={LIMITS.capability}
                  onChange={(e) => set("capability", e.target.value)}
                />
              )}
            </Field>
          </div>
        </fieldset>

        <CriteriaEditor criteria={form.criteria} errors={errors} onChange={(c) => set("criteria", c)} />

        <fieldset className="form-section">
          <legend>Scope</legend>
          <div className="form-row form-row-2">
            <Field
              id="f-include"
              label="Include globs"
              hint="One per line; empty means everything"
              errors={errs("scope.include")}
            >
              {(aria) => (
                <textarea
                  {...aria}
                  className="mono"
                  rows={4}
                  value={form.include}
                  onChange={(e) => set("include", e.target.value)}
                />
              )}
            </Field>
            <Field id="f-exclude" label="Exclude globs" hint="One per line" errors={errs("scope.exclude")}>
              {(aria) => (
                <textarea
                  {...aria}
                  className="mono"
                  rows={4}
                  value={form.exclude}
                  onChange={(e) => set("exclude", e.target.value)}
                />
              )}
            </Field>
          </div>
        </fieldset>

        <fieldset className="form-section">
          <legend>Budget</legend>
          <div className="form-row">
            <Field id="f-max-files" label="Max files" errors={errs("budget.maxFiles")}>
              {(aria) => (
                <input
                  {...aria}
                  type="number"
                  inputMode="numeric"
                  step={1}
                  value={form.maxFiles}
                  onChange={(e) => set("maxFiles", e.target.value)}
                />
              )}
            </Field>
            <Field id="f-max-lines" label="Max lines changed" errors={errs("budget.maxLinesChanged")}>
              {(aria) => (
                <input
                  {...aria}
                  type="number"
                  inputMode="numeric"
                  step={1}
                  value={form.maxLinesChanged}
                  onChange={(e) => set("maxLinesChanged", e.target.value)}
                />
              )}
            </Field>
            <Field id="f-max-duration" label="Max duration (seconds)" errors={errs("budget.maxDurationSec")}>
              {(aria) => (
                <input
                  {...aria}
                  type="number"
                  inputMode="numeric"
                  step={1}
                  value={form.maxDurationSec}
                  onChange={(e) => set("maxDurationSec", e.target.value)}
                />
              )}
            </Field>
            <Field id="f-max-cost" label="Max cost per attempt (USD)" errors={errs("budget.maxCostUsd")}>
              {(aria) => (
                <input
                  {...aria}
                  type="number"
                  inputMode="decimal"
                  min={0}
                  step="any"
                  value={form.maxCostUsd}
                  onChange={(e) => set("maxCostUsd", e.target.value)}
                />
              )}
            </Field>
          </div>
        </fieldset>

        <fieldset className="form-section">
          <legend>Worker input</legend>
          <Field
            id="f-script"
            label="Script"
            hint="For the reference worker: a shell script run in the task's workspace. Sent as input.script."
            errors={errs("script")}
          >
            {(aria) => (
              <textarea
                {...aria}
                className="mono"
                rows={5}
                value={form.script}
                onChange={(e) => set("script", e.target.value)}
              />
            )}
          </Field>
          <Field id="f-input" label="Input (JSON object)" hint="Any other fields for the worker" errors={errs("input")}>
            {(aria) => (
              <textarea
                {...aria}
                className="mono"
                rows={4}
                value={form.inputJson}
                onChange={(e) => set("inputJson", e.target.value)}
              />
            )}
          </Field>
        </fieldset>

        <div className="form-buttons">
          <button type="submit" className="btn btn-primary" disabled={create.isPending}>
            {create.isPending ? "Submitting…" : original ? "Submit rerun" : "Submit task"}
          </button>
          <Link to={original ? `/tasks/${original.id}` : "/tasks"} className="btn">
            Discard
          </Link>
          <span className="muted small">
            or <kbd>Ctrl</kbd>+<kbd>Enter</kbd>
          </span>
        </div>
      </form>
    </div>
  );
}
