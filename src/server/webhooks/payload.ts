import {
  WEBHOOK_EVENT_LABELS,
  WEBHOOK_TEST_EVENT,
  type WebhookDeliveryType,
  type WebhookEventType,
} from "../../shared/webhooks.js";

/** What every delivery of the standard format carries, and what the delivery row stores. */
export interface WebhookPayload {
  type: WebhookDeliveryType;
  /** When the event happened (ISO 8601). */
  timestamp: string;
  data: Record<string, unknown>;
}

/** A link into the console when PUBLIC_URL is set (the server cannot know its address otherwise). */
export function consoleLink(publicUrl: string | undefined, path: string): string | undefined {
  return publicUrl ? new URL(path, publicUrl.endsWith("/") ? publicUrl : `${publicUrl}/`).toString() : undefined;
}

const withUrl = (data: Record<string, unknown>, url: string | undefined) => (url ? { ...data, url } : data);

export interface TaskEventFacts {
  seq: string;
  taskId: string;
  title: string;
  state: string;
  previousState: string | null;
  priority: string;
  actor: string;
  reason: string | null;
  at: Date;
}

export function taskPayload(type: WebhookEventType, e: TaskEventFacts, publicUrl?: string): WebhookPayload {
  return {
    type,
    timestamp: e.at.toISOString(),
    data: withUrl(
      {
        taskId: e.taskId,
        title: e.title,
        state: e.state,
        previousState: e.previousState,
        priority: e.priority,
        actor: e.actor,
        ...(e.reason ? { reason: e.reason } : {}),
        eventSeq: e.seq,
      },
      consoleLink(publicUrl, `tasks/${e.taskId}`),
    ),
  };
}

export function workerPayload(
  type: WebhookEventType,
  w: { id: string; name: string; reason: string; from?: string; to?: string },
  publicUrl?: string,
): WebhookPayload {
  return {
    type,
    timestamp: new Date().toISOString(),
    data: withUrl(
      {
        workerId: w.id,
        worker: w.name,
        reason: w.reason.slice(0, 2000),
        ...(w.from ? { from: w.from, to: w.to } : {}),
      },
      consoleLink(publicUrl, "workers"),
    ),
  };
}

/** A Slack incoming-webhook message (`text` for notifications, `blocks` for the message itself). */
export function slackMessage(p: WebhookPayload): { text: string; blocks: unknown[] } {
  const d = p.data;
  const label = p.type === WEBHOOK_TEST_EVENT ? "Test event" : WEBHOOK_EVENT_LABELS[p.type];
  const mrkdwn = (s: unknown) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  const subject =
    typeof d.taskId === "string"
      ? `task *${mrkdwn(d.title)}* (${mrkdwn(d.taskId).slice(0, 8)})`
      : typeof d.worker === "string"
        ? `worker *${mrkdwn(d.worker)}*`
        : typeof d.endpoint === "string"
          ? `endpoint *${mrkdwn(d.endpoint)}*`
          : "the provenance log";
  const detail = typeof d.reason === "string" ? `\n>${mrkdwn(d.reason).slice(0, 500)}` : "";
  const link = typeof d.url === "string" ? ` <${d.url}|Open in the console>` : "";
  const text = `${label}: ${subject}${link}${detail}`;
  return {
    text: `${label}: ${subject.replace(/\*/g, "")}`,
    blocks: [
      { type: "section", text: { type: "mrkdwn", text } },
      { type: "context", elements: [{ type: "mrkdwn", text: `\`${p.type}\` at ${p.timestamp}` }] },
    ],
  };
}
