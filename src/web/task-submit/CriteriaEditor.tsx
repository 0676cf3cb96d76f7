import { Field } from "./Field.js";
import { type CheckKind, type CriterionForm, emptyCriterion, errorsUnder, type FieldErrors } from "./form-model.js";

interface Props {
  criteria: CriterionForm[];
  errors: FieldErrors;
  onChange: (next: CriterionForm[]) => void;
}

/** Acceptance criteria, each with an optional automated check the acceptance judge runs. */
export function CriteriaEditor({ criteria, errors, onChange }: Props) {
  const update = (key: number, patch: Partial<CriterionForm>) =>
    onChange(criteria.map((c) => (c.key === key ? { ...c, ...patch } : c)));
  const listErrors = errors.acceptanceCriteria ?? [];

  return (
    <fieldset className="form-section">
      <legend>Acceptance criteria</legend>
      {criteria.length === 0 ? <p className="muted">No criteria: the council judges without them.</p> : null}
      <ol className="criteria-editor">
        {criteria.map((c, i) => {
          const base = `acceptanceCriteria.${i}`;
          const id = `f-criterion-${c.key}`;
          return (
            <li key={c.key} className="criterion">
              <Field id={`${id}-text`} label={`Criterion ${i + 1}`} errors={errorsUnder(errors, `${base}.text`)}>
                {(aria) => <input {...aria} value={c.text} onChange={(e) => update(c.key, { text: e.target.value })} />}
              </Field>
              <div className="criterion-check">
                <Field id={`${id}-kind`} label={`Check for criterion ${i + 1}`} errors={[]}>
                  {(aria) => (
                    <select
                      {...aria}
                      value={c.checkKind}
                      onChange={(e) => update(c.key, { checkKind: e.target.value as CheckKind })}
                    >
                      <option value="none">No automated check</option>
                      <option value="command">Run a command</option>
                      <option value="pattern">Look for a pattern</option>
                    </select>
                  )}
                </Field>
                {c.checkKind === "command" ? (
                  <Field id={`${id}-command`} label="Command" errors={errorsUnder(errors, `${base}.check`)}>
                    {(aria) => (
                      <input
                        {...aria}
                        className="mono"
                        value={c.command}
                        onChange={(e) => update(c.key, { command: e.target.value })}
                      />
                    )}
                  </Field>
                ) : null}
                {c.checkKind === "pattern" ? (
                  <>
                    <Field id={`${id}-pattern`} label="Pattern" errors={errorsUnder(errors, `${base}.check.pattern`)}>
                      {(aria) => (
                        <input
                          {...aria}
                          className="mono"
                          value={c.pattern}
                          onChange={(e) => update(c.key, { pattern: e.target.value })}
                        />
                      )}
                    </Field>
                    <Field
                      id={`${id}-path`}
                      label="In files matching (optional glob)"
                      errors={errorsUnder(errors, `${base}.check.path`)}
                    >
                      {(aria) => (
                        <input
                          {...aria}
                          className="mono"
                          value={c.path}
                          onChange={(e) => update(c.key, { path: e.target.value })}
                        />
                      )}
                    </Field>
                    <label className="check">
                      <input
                        type="checkbox"
                        checked={c.mustMatch}
                        onChange={(e) => update(c.key, { mustMatch: e.target.checked })}
                      />
                      Must match (unchecked: must not match)
                    </label>
                  </>
                ) : null}
              </div>
              <button
                type="button"
                className="btn btn-small"
                onClick={() => onChange(criteria.filter((x) => x.key !== c.key))}
              >
                Remove criterion {i + 1}
              </button>
            </li>
          );
        })}
      </ol>
      <button type="button" className="btn" onClick={() => onChange([...criteria, emptyCriterion()])}>
        Add criterion
      </button>
      <p className="field-error" data-field-error="acceptanceCriteria">
        {listErrors.join(" · ")}
      </p>
    </fieldset>
  );
}
