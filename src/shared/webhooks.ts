import { z } from "zod";
import { safeText } from "./text.js";

/**
 * The events an endpoint may subscribe to, defined once for the server, the console and the tests.
 * Task events come from the task's state changes; worker events from the breaker and the health
 * check; provenance from a verification that found the log not intact.
 */
export const WEBHOOK_EVENT_TYPES = [
  "task.failed",
  "task.rejected",
  "task.changes_requested",
  "task.awaiting_approval",
  "task.accepted",
  "worker.breaker_opened",
  "worker.breaker_closed",
  "worker.down",
  "provenance.verification_failed",
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** What an admin's "Send test event" sends, whatever the endpoint's filter. */
export const WEBHOOK_TEST_EVENT = "webhook.test" as const;
export type WebhookDeliveryType = WebhookEventType | typeof WEBHOOK_TEST_EVENT;

/** One line per event, for the console's checkboxes and the README. */
export const WEBHOOK_EVENT_LABELS: Record<WebhookEventType, string> = {
  "task.failed": "Task failed",
  "task.rejected": "Task rejected",
  "task.changes_requested": "Changes requested",
  "task.awaiting_approval": "Task awaiting approval",
  "task.accepted": "Task accepted",
  "worker.breaker_opened": "Worker breaker opened",
  "worker.breaker_closed": "Worker breaker closed",
  "worker.down": "Worker down",
  "provenance.verification_failed": "Provenance verification failed",
};

/** The task state whose arrival is each task event. */
export const TASK_STATE_EVENTS: Record<string, WebhookEventType> = {
  failed: "task.failed",
  rejected: "task.rejected",
  changes_requested: "task.changes_requested",
  awaiting_approval: "task.awaiting_approval",
  accepted: "task.accepted",
};

/** "standard": `{ type, timestamp, data }` signed the Standard Webhooks way; "slack": a Slack incoming-webhook message. */
export const WEBHOOK_FORMATS = ["standard", "slack"] as const;
export type WebhookFormat = (typeof WEBHOOK_FORMATS)[number];

/** pending: waiting for its (next) try; delivering: a process holds it; delivered: 2xx; failed: given up. */
export const WEBHOOK_DELIVERY_STATUSES = ["pending", "delivering", "delivered", "failed"] as const;
export type WebhookDeliveryStatus = (typeof WEBHOOK_DELIVERY_STATUSES)[number];

const fields = {
  name: z
    .string()
    .trim()
    .min(1, "Webhook name is required")
    .max(100, "Webhook name must be at most 100 characters")
    .regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]*$/, "Webhook name may contain only letters, digits, spaces, '.', '_' and '-'"),
  url: safeText(
    z.string().trim().min(1, "Webhook URL is required").max(500, "Webhook URL must be at most 500 characters"),
  ),
  events: z
    .array(z.enum(WEBHOOK_EVENT_TYPES, { error: `Events must be among ${WEBHOOK_EVENT_TYPES.join(", ")}` }))
    .min(1, "Choose at least one event")
    .max(WEBHOOK_EVENT_TYPES.length)
    .transform((events) => [...new Set(events)]),
  format: z.enum(WEBHOOK_FORMATS),
  enabled: z.boolean(),
};

/** A new endpoint, as the API and the console's form check it. */
export const webhookCreateSchema = z.object({
  name: fields.name,
  url: fields.url,
  events: fields.events,
  format: fields.format.default("standard"),
});
export type WebhookCreateInput = z.output<typeof webhookCreateSchema>;

/** Field by field; absent keeps the field. Enabling an endpoint clears why it was disabled. */
export const webhookPatchSchema = z.object({
  name: fields.name.optional(),
  url: fields.url.optional(),
  events: fields.events.optional(),
  format: fields.format.optional(),
  enabled: fields.enabled.optional(),
});
export type WebhookPatch = z.output<typeof webhookPatchSchema>;
