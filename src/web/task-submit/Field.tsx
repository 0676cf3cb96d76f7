import type { ReactNode } from "react";

interface Props {
  id: string;
  label: string;
  hint?: string;
  errors: string[];
  children: (aria: { id: string; "aria-invalid"?: true; "aria-describedby": string }) => ReactNode;
}

/** A labelled input with its hint and its error messages, which keep their space so the form does not jump. */
export function Field({ id, label, hint, errors, children }: Props) {
  const describedBy = [hint ? `${id}-hint` : null, `${id}-error`].filter(Boolean).join(" ");
  return (
    <div className="field" data-invalid={errors.length ? true : undefined}>
      <label htmlFor={id}>{label}</label>
      {hint ? (
        <p id={`${id}-hint`} className="hint">
          {hint}
        </p>
      ) : null}
      {children({ id, ...(errors.length ? { "aria-invalid": true as const } : {}), "aria-describedby": describedBy })}
      <p id={`${id}-error`} className="field-error" data-field-error={id}>
        {errors.join(" · ")}
      </p>
    </div>
  );
}
