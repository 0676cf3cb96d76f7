import { type FormEvent, useId, useState } from "react";
import {
  WEBHOOK_EVENT_LABELS,
  WEBHOOK_EVENT_TYPES,
  WEBHOOK_FORMATS,
  type WebhookEventType,
  type WebhookFormat,
  webhookCreateSchema,
} from "../../shared/webhooks.js";
import { refusalText } from "../components/ErrorMessage.js";

export interface WebhookFormValues {
  name: string;
  url: string;
  events: WebhookEventType[];
  format: WebhookFormat;
}

const FORMAT_LABELS: Record<WebhookFormat, string> = {
  standard: "Standard Webhooks JSON (signed)",
  slack: "Slack incoming webhook",
};

/** The endpoint form, checked with the server's own schema before it is sent. */
export function WebhookForm({
  initial,
  submitLabel,
  pending,
  error,
  onSubmit,
  onCancel,
}: {
  initial?: WebhookFormValues;
  submitLabel: string;
  pending: boolean;
  error: { message: string } | null;
  onSubmit: (values: WebhookFormValues) => void;
  onCancel?: () => void;
}) {
  const id = useId();
  const [name, setName] = useState(initial?.name ?? "");
  const [url, setUrl] = useState(initial?.url ?? "");
  const [events, setEvents] = useState<WebhookEventType[]>(initial?.events ?? []);
  const [format, setFormat] = useState<WebhookFormat>(initial?.format ?? "standard");
  const [problems, setProblems] = useState<Record<string, string>>({});

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const parsed = webhookCreateSchema.safeParse({ name, url, events, format });
    if (!parsed.success) {
      const found: Record<string, string> = {};
      for (const issue of parsed.error.issues) found[String(issue.path[0])] ??= issue.message;
      setProblems(found);
      return;
    }
    setProblems({});
    onSubmit(parsed.data);
  };

  const toggle = (event: WebhookEventType, on: boolean) =>
    setEvents((current) => (on ? [...current, event] : current.filter((x) => x !== event)));

  return (
    <form className="admin-form" onSubmit={submit} noValidate aria-label={submitLabel}>
      <div className="form-row">
        <div className="field">
          <label htmlFor={`${id}-name`}>Name</label>
          <input
            id={`${id}-name`}
            value={name}
            maxLength={100}
            aria-invalid={problems.name ? true : undefined}
            aria-describedby={problems.name ? `${id}-name-error` : undefined}
            onChange={(e) => setName(e.target.value)}
          />
          {problems.name ? (
            <p className="field-error" id={`${id}-name-error`}>
              {problems.name}
            </p>
          ) : null}
        </div>
        <div className="field">
          <label htmlFor={`${id}-url`}>URL</label>
          <input
            id={`${id}-url`}
            type="url"
            value={url}
            maxLength={500}
            placeholder="https://example.com/hooks/agency"
            aria-invalid={problems.url ? true : undefined}
            aria-describedby={problems.url ? `${id}-url-error` : undefined}
            onChange={(e) => setUrl(e.target.value)}
          />
          {problems.url ? (
            <p className="field-error" id={`${id}-url-error`}>
              {problems.url}
            </p>
          ) : null}
        </div>
      </div>
      <fieldset className="field">
        <legend>Events</legend>
        {WEBHOOK_EVENT_TYPES.map((event) => (
          <label key={event} className="check">
            <input type="checkbox" checked={events.includes(event)} onChange={(e) => toggle(event, e.target.checked)} />
            {WEBHOOK_EVENT_LABELS[event]} <code>{event}</code>
          </label>
        ))}
        {problems.events ? <p className="field-error">{problems.events}</p> : null}
      </fieldset>
      <fieldset className="field">
        <legend>Payload</legend>
        {WEBHOOK_FORMATS.map((f) => (
          <label key={f} className="check">
            <input type="radio" name={`${id}-format`} checked={format === f} onChange={() => setFormat(f)} />
            {FORMAT_LABELS[f]}
          </label>
        ))}
      </fieldset>
      <p className="field-error" role={error ? "alert" : undefined}>
        {error ? refusalText(error) : ""}
      </p>
      <div className="form-buttons">
        <button type="submit" className="btn btn-primary" disabled={pending}>
          {pending ? "Saving…" : submitLabel}
        </button>
        {onCancel ? (
          <button type="button" className="btn" onClick={onCancel}>
            Cancel
          </button>
        ) : null}
      </div>
    </form>
  );
}
